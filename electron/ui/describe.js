// Words for the progress window: the engine and the machine, sizes, speeds, and a
// message a person can act on for every exit code. Plain functions, no DOM: loaded
// by progress.html as a script and by Node tests with require().
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory();
  else root.PeftDescribe = factory();
}(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  /** "linux-x86_64-cuda12.8" -> { kind: 'cuda', words: 'CUDA 12.8 engine' } */
  function engineOf(variant) {
    const tag = String(variant || '').split('-').pop().toLowerCase();
    let m;
    if ((m = /^cuda(\d+(?:\.\d+)?)$/.exec(tag))) return { kind: 'cuda', words: `CUDA ${m[1]} engine` };
    if ((m = /^rocm(\d+(?:\.\d+)?)?$/.exec(tag))) return { kind: 'rocm', words: m[1] ? `ROCm ${m[1]} engine` : 'ROCm engine' };
    if (tag === 'metal' || tag === 'mps') return { kind: 'metal', words: 'Metal engine' };
    if (tag === 'cpu') return { kind: 'cpu', words: 'CPU engine' };
    return { kind: 'other', words: variant ? `${variant} engine` : 'engine' };
  }

  function nvidiaName(name) {
    const n = String(name || 'GPU').trim();
    return /^nvidia\b/i.test(n) ? n : `NVIDIA ${n}`;
  }

  /** "for your NVIDIA GeForce RTX 4090" / "for this computer's processor" ... */
  function forWhom(hardware, variant) {
    const kind = engineOf(variant).kind;
    const hw = hardware || {};
    if (kind === 'cuda') {
      const gpus = (hw.nvidia && hw.nvidia.gpus) || [];
      const visible = Array.isArray(hw.visible_gpus) && hw.visible_gpus.length
        ? gpus.filter((g) => hw.visible_gpus.includes(g.index)) : gpus;
      const list = visible.length ? visible : gpus;
      if (list.length === 1) return `for your ${nvidiaName(list[0].name)}`;
      if (list.length > 1) {
        const names = [...new Set(list.map((g) => nvidiaName(g.name)))];
        return names.length === 1 ? `for your ${list.length} ${names[0]} GPUs` : `for your ${list.length} NVIDIA GPUs`;
      }
      return 'for your NVIDIA graphics card';
    }
    if (kind === 'metal') return 'for your Apple Silicon Mac';
    if (kind === 'rocm') return 'for your AMD graphics card';
    if (kind === 'cpu') return "for this computer's processor";
    return 'for this computer';
  }

  /** "NVIDIA GeForce RTX 4090, driver 535.104.05" / "Apple Silicon" / "16 CPU cores, no NVIDIA graphics card found" */
  function machineWords(hardware) {
    const hw = hardware || {};
    const gpus = (hw.nvidia && hw.nvidia.gpus) || [];
    if (gpus.length) {
      const names = [...new Set(gpus.map((g) => nvidiaName(g.name)))].join(', ');
      return hw.nvidia.driver ? `${names}, driver ${hw.nvidia.driver}` : names;
    }
    if (hw.os === 'macos' && hw.arch === 'aarch64') return 'Apple Silicon';
    const cores = hw.cpu && hw.cpu.cores ? `${hw.cpu.cores} CPU cores` : 'the CPU';
    return hw.nvidia_pci && hw.nvidia_pci.length ? `${cores}; an NVIDIA card without a working driver` : `${cores}, no NVIDIA graphics card found`;
  }

  function engineSentence(hardware, variant) {
    return `${engineOf(variant).words} ${forWhom(hardware, variant)}`;
  }

  /** Does the machine have an NVIDIA GPU the CPU engine would not use? */
  function hasGpu(hardware) {
    const hw = hardware || {};
    return Boolean((hw.nvidia && hw.nvidia.gpus && hw.nvidia.gpus.length) || (hw.nvidia_pci && hw.nvidia_pci.length));
  }

  function bytes(n) {
    if (!Number.isFinite(n) || n < 0) return '';
    const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
    let i = 0;
    let v = n;
    while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
    if (i === 0) return `${Math.round(v)} bytes`;
    return `${v >= 100 ? Math.round(v) : v.toFixed(1).replace(/\.0$/, '')} ${units[i]}`;
  }

  function duration(seconds) {
    if (!Number.isFinite(seconds) || seconds < 0) return '';
    const s = Math.ceil(seconds);
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
    return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
  }

  /**
   * What to say when the bootstrapper stopped with an error, by exit code (docs/CONTRACT.md §4).
   * Returns { title, body, actions } with actions from: retry, cpu, folder, log.
   */
  function errorAdvice(err, { hardware, variant } = {}) {
    const code = err && Number.isInteger(err.exit_code) ? err.exit_code : 1;
    const onGpu = engineOf(variant).kind !== 'cpu' && engineOf(variant).kind !== 'other';
    switch (code) {
      case 3: return {
        title: "Can't reach the download server",
        body: 'PEFT Studio downloads its engine once, on the first start. Check your internet connection and try again, or install from a folder someone prepared for you (a USB stick or a share).',
        actions: ['retry', 'folder', 'log'],
      };
      case 4: return {
        title: "The download didn't pass its safety check",
        body: 'Nothing was installed: the files did not match their signature. A damaged download or a network that alters files can cause this. Try again; if it happens again, install from a folder and tell whoever runs your network.',
        actions: ['retry', 'folder', 'log'],
      };
      case 5: return {
        title: 'No engine fits this computer yet',
        body: hasGpu(hardware) || onGpu
          ? 'None of the graphics-card engines can run on this computer as it is set up now; often the graphics driver is too old (details below). Updating the driver and trying again gives you the fast engine. The CPU engine runs on any computer, only slower.'
          : 'No engine of a compatible release was built for this computer. The CPU engine may still run; or install from a folder that holds one for this machine.',
        actions: ['cpu', 'folder', 'log'],
      };
      case 6: return {
        title: 'Not enough room to install the engine',
        body: 'PEFT Studio could not write the engine to disk (it is full, or the folder is not writable). Free some space as described below, then try again. Nothing you had before was changed.',
        actions: ['retry', 'log'],
      };
      case 7: return {
        title: 'Another PEFT Studio is installing the engine',
        body: 'Only one copy can install at a time. Wait until the other window is done, then try again.',
        actions: ['retry'],
      };
      case 2: return {
        title: 'A setting is not right',
        body: 'The installer was started with a setting it cannot use. The details below name it.',
        actions: ['retry', 'log'],
      };
      default: return {
        title: 'Something went wrong inside PEFT Studio',
        body: 'This is a bug on our side, not something you did. Trying again often helps; if not, the log shows what happened.',
        actions: ['retry', 'cpu', 'log'],
      };
    }
  }

  const ACTION_LABELS = {
    retry: 'Try again',
    cpu: 'Use the CPU engine instead',
    folder: 'Install from a folder…',
    log: 'Open the log',
    cancel: 'Cancel',
    restart: 'Restart to use it',
    wait: 'Keep waiting',
  };

  return { engineOf, forWhom, engineSentence, machineWords, hasGpu, bytes, duration, errorAdvice, ACTION_LABELS };
}));
