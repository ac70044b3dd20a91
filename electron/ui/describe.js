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
    if (tag === 'dev') return { kind: 'dev', words: 'development engine (from source)' };
    return { kind: 'other', words: variant ? `${variant} engine` : 'engine' };
  }

  const APPLE_SILICON = 'Apple Silicon (M-series)';

  /** A Mac with an Apple chip: the bootstrapper says arm64 (ids: macos-arm64-*); aarch64 is accepted too. */
  function isAppleSilicon(hw) {
    const h = hw || {};
    return h.os === 'macos' && (h.arch === 'arm64' || h.arch === 'aarch64');
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
    if (kind === 'metal') return `for your Mac with ${APPLE_SILICON}`;
    if (kind === 'cpu' && isAppleSilicon(hw)) return `for your Mac with ${APPLE_SILICON}`;
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
    if (isAppleSilicon(hw)) return APPLE_SILICON;
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
   * What to say when the bootstrapper stopped with an error: chosen by its `reason`
   * (docs/CONTRACT.md §4's stable list of reasons), else by exit code for a reason this
   * window does not know yet. Returns { title, body, actions } with actions from ACTION_LABELS.
   * No flag or environment-variable name ever appears here: a person in a window
   * cannot set one (the details go to the log).
   */
  function errorAdvice(err, { hardware, variant } = {}) {
    const reason = err && typeof err.reason === 'string' ? err.reason : null;
    const onGpu = engineOf(variant).kind !== 'cpu' && engineOf(variant).kind !== 'other';
    const folderWords = 'or install from a folder someone prepared for you (a USB stick or a share)';
    const byReason = {
      not_configured: {
        title: "This copy of PEFT Studio doesn't know where to get its engine",
        body: `It was built without a download address. Install the engine ${folderWords.slice(3)}, or get PEFT Studio again from its official download page.`,
        actions: ['folder', 'log'],
      },
      config_invalid: {
        title: "PEFT Studio's download settings are damaged",
        body: `The file that tells PEFT Studio where to download its engine cannot be read. Reinstalling PEFT Studio fixes this; ${folderWords.slice(3)} meanwhile.`,
        actions: ['folder', 'log'],
      },
      usage: {
        title: 'A setting is not right',
        body: 'PEFT Studio was started with a setting the installer cannot use. The log names it.',
        actions: ['retry', 'log'],
      },
      unknown_variant: {
        title: "That engine isn't offered",
        body: 'The engine chosen for this computer is not offered by any release of PEFT Studio. Let PEFT Studio pick the engine that fits, or use the CPU engine.',
        actions: ['auto', 'cpu', 'log'],
      },
      not_a_bundle_folder: {
        title: "That folder doesn't hold an engine",
        body: 'The folder you chose has no engine files in it, nor one or two levels down (they are in a folder named peft-backend-bundles). Choose the USB stick or folder that holds them.',
        actions: ['folder', 'log'],
      },
      unreachable: {
        title: "Can't reach the download server",
        body: `PEFT Studio downloads its engine once, on the first start. Check your internet connection and try again, ${folderWords}.`,
        actions: ['retry', 'folder', 'log'],
      },
      not_found: {
        title: "The engine isn't on the download server",
        body: `The server answered, but the engine files are not where they should be. Your connection is fine. Try again later, ${folderWords}.`,
        actions: ['retry', 'folder', 'log'],
      },
      server_error: {
        title: 'The download server has a problem',
        body: `The server answered with an error. Your connection is fine. Try again in a few minutes, ${folderWords}.`,
        actions: ['retry', 'folder', 'log'],
      },
      expired: {
        title: 'The list of engines on the server is out of date',
        body: `Its signature has expired, so PEFT Studio does not trust it and installed nothing. If this computer's date is wrong, correcting it fixes this; otherwise the server is usually updated within a day. Try again later, ${folderWords}.`,
        actions: ['retry', 'folder', 'log'],
      },
      tampered: {
        title: "The download didn't pass its safety check",
        body: 'Nothing was installed: the files did not match their signature. A damaged download or a network that alters files can cause this. Try again; if it happens again, install from a folder and tell whoever runs your network.',
        actions: ['retry', 'folder', 'log'],
      },
      untrusted_key: {
        title: 'The engine is signed by a publisher this app does not know',
        body: 'The download is signed, but not with a key this copy of PEFT Studio trusts, so nothing was installed. Get PEFT Studio and its engine from the same place, or install from a folder your administrator prepared.',
        actions: ['folder', 'log'],
      },
      downgrade: {
        title: 'The server offers an older list of engines than before',
        body: 'PEFT Studio refused it: an older list could bring back engines with known problems. Nothing was changed. Try again later, or install from a folder.',
        actions: ['retry', 'folder', 'log'],
      },
      no_variant: null, // below: depends on the machine
      incompatible: {
        title: 'No engine for this version of PEFT Studio',
        body: 'The engines on the server are made for another version of PEFT Studio. Updating PEFT Studio fixes this; or install from a folder that holds an engine for this version.',
        actions: ['folder', 'log'],
      },
      permission: {
        title: "PEFT Studio can't write to its engine folder",
        body: 'Your account may not write to the folder where PEFT Studio keeps its engine. Choose another location for it, or ask whoever manages this computer for access. Nothing you had before was changed.',
        actions: ['location', 'retry', 'log'],
      },
      disk_full: {
        title: 'Not enough room to install the engine',
        body: 'The disk is full. Free some space and try again, or choose another location (another disk) for the engine. Nothing you had before was changed.',
        actions: ['location', 'retry', 'log'],
      },
      storage: {
        title: "PEFT Studio can't store its engine",
        body: 'Writing the engine to disk failed. Try again, or choose another location for the engine.',
        actions: ['retry', 'location', 'log'],
      },
      busy: {
        title: 'Another PEFT Studio is installing the engine',
        body: 'Only one copy can install at a time. Wait until the other window is done, then try again.',
        actions: ['retry'],
      },
      internal: {
        title: 'Something went wrong inside PEFT Studio',
        body: 'This is a bug on our side, not something you did. Trying again often helps; if not, the log shows what happened.',
        actions: ['retry', 'cpu', 'log'],
      },
    };
    const noVariant = {
      title: 'No engine fits this computer yet',
      body: hasGpu(hardware) || onGpu
        ? 'None of the graphics-card engines can run on this computer as it is set up now; often the graphics driver is too old (details below). Updating the driver and trying again gives you the fast engine. The CPU engine runs on any computer, only slower.'
        : 'No engine of a compatible release was built for this computer. The CPU engine may still run; or install from a folder that holds one for this machine.',
      actions: ['cpu', 'folder', 'log'],
    };
    if (reason === 'no_variant') return noVariant;
    if (reason && byReason[reason]) return byReason[reason];
    // a reason this window does not know (or none): by exit code
    const code = err && Number.isInteger(err.exit_code) ? err.exit_code : 1;
    switch (code) {
      case 2: return byReason.usage;
      case 3: return byReason.unreachable;
      case 4: return byReason.tampered;
      case 5: return noVariant;
      case 6: return {
        title: "PEFT Studio can't store its engine",
        body: 'PEFT Studio could not write the engine to disk: the disk is full, or the folder is not writable. Free some space or choose another location, then try again. Nothing you had before was changed.',
        actions: ['location', 'retry', 'log'],
      };
      case 7: return byReason.busy;
      default: return byReason.internal;
    }
  }

  /** Every reason errorAdvice words (the stable list). */
  const REASONS = ['not_configured', 'config_invalid', 'usage', 'unknown_variant', 'not_a_bundle_folder', 'unreachable',
    'not_found', 'server_error', 'expired', 'tampered', 'untrusted_key', 'downgrade', 'no_variant', 'incompatible',
    'permission', 'disk_full', 'storage', 'busy', 'internal'];

  const FLAGGY = /(^|[\s`'"(=])--?[a-z][a-z0-9-]*|\bPEFT_[A-Z0-9_]+|\bpeft-bootstrap\b/;

  /**
   * The bootstrapper's own words for the window: its message and hint cut into
   * clauses, keeping only those that name no flag, no environment variable and no
   * command (the log keeps them whole).
   */
  function windowDetail(err) {
    if (!err) return '';
    const text = [err.message, err.hint].filter(Boolean).join('. ')
      .replace(/\s*\([^()]*\)/g, (m) => (FLAGGY.test(m.replace(/^\s*\(/, ' ')) ? '' : m));
    const parts = text.split(/(?<=[.;!?])\s+|,\s+or\s+|;\s+|\s+—\s+/);
    const kept = [];
    for (const raw of parts) {
      const p = raw.trim().replace(/[.;,]+$/, '');
      if (!p || FLAGGY.test(p)) continue;
      kept.push(p);
    }
    return kept.join(' — ');
  }

  /** "Connection lost — trying again in 2 s (attempt 2 of 5)" for a `retry` event, msLeft until the next try. */
  function retryWords(ev, msLeft) {
    const what = {
      unreachable: 'Connection lost',
      not_found: "The server can't find a file",
      server_error: 'The server had a problem',
    }[ev && ev.reason] || 'The download was interrupted';
    const left = Math.max(0, Number.isFinite(msLeft) ? msLeft : Number(ev && ev.wait_ms) || 0);
    const when = left <= 0 ? 'trying again now' : `trying again in ${Math.ceil(left / 1000)} s`;
    const of = ev && ev.attempt ? ` (attempt ${ev.attempt}${ev.max_attempts ? ` of ${ev.max_attempts}` : ''})` : '';
    return `${what} — ${when}${of}`;
  }

  /**
   * The line under the bar: "8.2 MB of 24 MB · resumed at 7.7 MB · 1 MB/s · 16 s left".
   * `speed` must come from bytes moved in this run (done - resumed_from over time).
   */
  function transferWords({ phase, done, total, resumedFrom = 0, speed = 0, stalled = false }) {
    if (phase === 'download' && resumedFrom > 0 && !(speed > 0)) return `Resuming at ${bytes(resumedFrom)} of ${bytes(total)}`;
    const parts = [`${bytes(done)} of ${bytes(total)}`];
    if (phase === 'download' && resumedFrom > 0) parts.push(`resumed at ${bytes(resumedFrom)}`);
    if ((phase === 'download' || phase === 'copy') && speed > 0 && !stalled) { // a stalled speed would be a lie
      parts.push(`${bytes(speed)}/s`);
      if (done < total) parts.push(`${duration((total - done) / speed)} left`);
    }
    return parts.join(' · ');
  }

  const ACTION_LABELS = {
    retry: 'Try again',
    cpu: 'Use the CPU engine instead',
    folder: 'Install from a folder…',
    log: 'Open the log',
    cancel: 'Cancel',
    restart: 'Restart to use it',
    wait: 'Keep waiting',
    location: 'Choose another location…',
    repair: 'Repair the engine',
    auto: 'Pick the engine for me',
    engine: 'Open the engine page',
  };

  return { engineOf, forWhom, engineSentence, machineWords, hasGpu, isAppleSilicon, bytes, duration, errorAdvice, windowDetail, retryWords,
    transferWords, REASONS, ACTION_LABELS, APPLE_SILICON };
}));
