// Words and shapes for the Engine page (engine.html): plain functions, no DOM, loaded
// by the page as a script and by Node tests with require(). Input: what
// lib/enginectl.js's info() and the engine's self-test return.
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory(require('./describe.js'));
  else root.PeftEngineInfo = factory(root.PeftDescribe);
}(typeof self !== 'undefined' ? self : this, function (D) {
  'use strict';

  /** Compare dotted versions numerically ("1.10.0" > "1.9.2"); pre-release text compares as text. */
  function cmpVersion(a, b) {
    const pa = String(a).split(/[.+-]/);
    const pb = String(b).split(/[.+-]/);
    for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
      const x = pa[i] ?? '';
      const y = pb[i] ?? '';
      const nx = /^\d+$/.test(x) ? Number(x) : NaN;
      const ny = /^\d+$/.test(y) ? Number(y) : NaN;
      if (!Number.isNaN(nx) && !Number.isNaN(ny)) { if (nx !== ny) return nx < ny ? -1 : 1; } else if (x !== y) return x < y ? -1 : 1;
    }
    return 0;
  }

  /** "cuda:0" + its name -> "NVIDIA GeForce RTX 4090 (cuda:0)"; "cpu" -> "The processor (CPU)". */
  function deviceWords(system, hardware) {
    const sys = system || {};
    const dev = sys.device || 'cpu';
    if (dev === 'none' || sys.torch_available === false) return 'Nothing: this engine was built without PyTorch';
    if (dev === 'cpu') return D.isAppleSilicon(hardware) ? `The processor (${D.APPLE_SILICON})` : 'The processor (CPU)';
    if (dev === 'mps') return `The ${D.APPLE_SILICON} graphics (Metal)`;
    const d = (sys.devices || []).find((x) => `cuda:${x.index}` === dev) || (sys.devices || [])[0];
    return d && d.name ? `${d.name} (${dev})` : dev;
  }

  /** The "What runs" rows: [label, value]. */
  function runningRows(info) {
    const r = info && info.running;
    if (!r) return [['Engine', info && info.mode === 'dev' ? 'Development engine (from source)' : 'Not running']];
    const hw = info.detect && info.detect.hardware;
    const sys = r.system || {};
    const rows = [
      ['Engine', `${D.engineOf(r.variant || sys.variant).words} ${r.version || sys.version || ''}`.trim().replace(/^./, (c) => c.toUpperCase())],
      ['Variant', r.variant || sys.variant || 'unknown'],
      ['Runs on', r.system ? deviceWords(sys, hw) : 'unknown (the engine did not say)'],
    ];
    const gpus = (sys.devices || []).filter((d) => d.name);
    if (gpus.length) rows.push(['GPU', gpus.map((g) => (g.total_memory ? `${g.name}, ${D.bytes(g.total_memory)}` : g.name)).join('; ')]);
    else if (hw) rows.push(['This computer', D.machineWords(hw)]);
    if (sys.torch_available === false) rows.push(['Training', 'Not available in this engine (it was built without PyTorch)']);
    return rows;
  }

  /** Installed versions: [{ version, variant, size, current, staged, refused, allow }], newest first. */
  function installedRows(status) {
    if (!status || !Array.isArray(status.installed)) return [];
    const staged = status.staged || null;
    const refused = Array.isArray(status.refused) ? status.refused : [];
    return status.installed
      .map((i) => {
        const ref = refused.find((r) => r.version === i.version && r.variant === i.variant);
        return {
          version: i.version, variant: i.variant, size: D.bytes(Number(i.bytes)), current: Boolean(i.current),
          staged: Boolean(staged && staged.version === i.version && staged.variant === i.variant),
          refused: Boolean(ref), installedAt: i.installed_at || '',
        };
      })
      .sort((a, b) => (a.current !== b.current ? (a.current ? -1 : 1) : -cmpVersion(a.version, b.version)));
  }

  /** Removable by "Remove old versions": installs that are neither current, previous nor staged. */
  function oldCount(status) {
    const rows = installedRows(status);
    const prev = status && status.current && status.current.previous;
    return rows.filter((r) => !r.current && !r.staged && !(prev && String(prev).includes(r.version) && String(prev).includes(r.variant))).length;
  }

  /**
   * The engines this machine can switch to: one row per variant (its newest release),
   * [{ id, words, fits, why, current }]; fitting ones first, then the CPU engine.
   */
  function variantChoices(detect, currentVariant) {
    const verdicts = (detect && detect.verdicts) || [];
    const best = new Map();
    for (const v of verdicts) {
      const have = best.get(v.variant);
      if (!have || cmpVersion(v.version, have.version) > 0 || (v.fits && !have.fits && v.version === have.version)) best.set(v.variant, v);
    }
    const rank = (k) => ({ cuda: 0, rocm: 0, metal: 0, cpu: 1 }[k] ?? 2);
    return [...best.values()]
      .map((v) => ({
        id: v.variant, version: v.version, words: D.engineOf(v.variant).words.replace(/^./, (c) => c.toUpperCase()),
        fits: Boolean(v.fits), why: v.reason || '', current: v.variant === currentVariant,
      }))
      .sort((a, b) => (a.fits !== b.fits ? (a.fits ? -1 : 1) : rank(D.engineOf(a.id).kind) - rank(D.engineOf(b.id).kind) || a.id.localeCompare(b.id)));
  }

  /** The update line and whether "Restart to update" is offered. */
  function updateState(update) {
    const u = update || {};
    switch (u.state) {
      case 'staged': return { text: `Version ${u.version} is downloaded and ready.`, restart: true };
      case 'up_to_date': return { text: 'This is the newest engine for this version of PEFT Studio.', restart: false };
      case 'checking': return { text: 'Looking for a newer engine…', restart: false };
      case 'failed': return { text: 'Could not look for a newer engine just now; PEFT Studio tries again at the next start.', restart: false };
      default: return { text: 'PEFT Studio looks for a newer engine in the background after each start.', restart: false };
    }
  }

  /** SVG polyline points for the loss curve in a w x h box (higher loss is higher up). */
  function lossPoints(losses, w = 300, h = 90, pad = 6) {
    const ls = (losses || []).map(Number).filter(Number.isFinite);
    if (ls.length === 0) return '';
    const lo = Math.min(...ls);
    const hi = Math.max(...ls);
    const span = hi - lo || 1;
    const step = ls.length > 1 ? (w - 2 * pad) / (ls.length - 1) : 0;
    return ls.map((v, i) => `${(pad + i * step).toFixed(1)},${(pad + (1 - (v - lo) / span) * (h - 2 * pad)).toFixed(1)}`).join(' ');
  }

  /** The self-test in words: { title, kind, lines: [[label, value]], points, done }. */
  function selfTestView(st) {
    const s = st || {};
    const losses = Array.isArray(s.losses) ? s.losses.map(Number).filter(Number.isFinite) : [];
    const lines = [];
    if (s.device && s.device !== 'none') lines.push(['Device', s.device_name ? `${s.device_name} (${s.device})` : s.device]);
    if (Number.isFinite(s.steps)) lines.push(['Steps', `${s.steps_done || 0} of ${s.steps}`]);
    if (Number.isFinite(s.steps_per_second) && s.steps_per_second > 0) lines.push(['Speed', `${s.steps_per_second >= 10 ? Math.round(s.steps_per_second) : s.steps_per_second.toFixed(2)} steps per second`]);
    if (losses.length) lines.push(['Loss', losses.length > 1 ? `${losses[0].toFixed(3)} → ${losses[losses.length - 1].toFixed(3)}` : losses[0].toFixed(3)]);
    const falling = losses.length > 1 && losses[losses.length - 1] < losses[0];
    let title; let kind;
    switch (s.state) {
      case 'running': title = 'Training a tiny model on this computer…'; kind = 'info'; break;
      case 'done':
        title = falling ? 'The engine can train on this computer' : 'The check finished, but the loss did not go down';
        kind = falling ? 'good' : 'warn'; break;
      case 'unavailable': title = 'This engine cannot train'; kind = 'warn'; break;
      case 'failed': title = 'The check failed'; kind = 'error'; break;
      default: title = 'Check the engine on this computer'; kind = 'info';
    }
    let message = s.message || '';
    if (s.state === 'unavailable' && !message) message = 'This engine cannot train: it was built without PyTorch.';
    if (s.state === 'unavailable') message += ' Switch to an engine that can train (above), then check again.';
    return { title, kind, lines, message: message.trim(), points: lossPoints(losses), done: s.state !== 'running' && s.state != null, falling };
  }

  return { cmpVersion, deviceWords, runningRows, installedRows, oldCount, variantChoices, updateState, lossPoints, selfTestView };
}));
