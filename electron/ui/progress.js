// The first-run window's behaviour: fed the launcher's events, it shows the engine in
// words, the steps, a bar with bytes / speed / time left, and for every failure a
// message with actions. No framework: one state object and one render().
//
// Bridge: in Electron, preload.js exposes window.peft = { onEvent(cb), act(name, arg) }.
// Without it (tests in a plain browser) actions are recorded in window.peftActions and
// events are fed through window.peftView.feed(event, nowMs); window.peftView.tick(nowMs)
// advances the clock (the stall notice).
(function () {
  'use strict';
  const D = window.PeftDescribe;
  const STALL_MS = 60_000;
  const STEPS = ['check', 'download', 'verify', 'extract', 'start'];
  const STEP_OF_PHASE = { download: 'download', copy: 'download', patch: 'extract', verify: 'verify', extract: 'extract' };
  const PHASE_VERB = { download: 'Downloading', copy: 'Copying', patch: 'Updating', verify: 'Checking', extract: 'Unpacking' };

  function fresh() {
    return {
      hardware: null, selected: null, step: 'check', done: new Set(), phase: null, doneBytes: 0, totalBytes: 0,
      speed: 0, lastSample: null, lastProgressAt: null, startedAt: null, error: null, engine: null, ready: null,
      cancelled: false, stalled: false, update: null, warnings: [], failedEngine: null, resumedFrom: 0, retry: null,
      repair: null, copying: false,
    };
  }

  class View {
    constructor(doc, bridge) {
      this.doc = doc;
      this.bridge = bridge;
      this.s = fresh();
      this.now = Date.now();
      this.el = (id) => doc.getElementById(id);
      this.render();
    }

    reset() { const { hardware, selected } = this.s; this.s = fresh(); this.s.hardware = hardware; this.s.selected = selected; this.render(); }

    feed(ev, now = Date.now()) {
      const s = this.s;
      this.now = now;
      if (s.startedAt == null) s.startedAt = now;
      switch (ev.event) {
        case 'hardware': s.hardware = ev; break;
        case 'selected': s.selected = ev; s.done.add('check'); s.step = 'download'; s.lastProgressAt = now; break;
        case 'progress': this._progress(ev, now); break;
        case 'warning': s.warnings.push(ev.message); break;
        case 'ready':
          s.ready = ev;
          for (const st of ['check', 'download', 'verify', 'extract']) s.done.add(st);
          s.step = 'start'; s.phase = null; s.lastProgressAt = now;
          if (!s.selected) s.selected = { version: ev.version, variant: ev.variant };
          break;
        case 'error': s.error = ev; s.stalled = false; s.retry = null; break;
        case 'retry': s.retry = { ...ev, at: now }; s.lastProgressAt = now; s.stalled = false; break;
        case 'repair': s.repair = ev; break;
        case 'engine': this._engine(ev); break;
        case 'update': s.update = ev; break;
        case 'rollback': s.warnings.push(`The new engine did not start, so PEFT Studio went back to the one that worked (${ev.to}).`); break;
        default: break; // unknown events: the wire format grows; ignore what we do not show
      }
      this.render();
    }

    _progress(ev, now) {
      const s = this.s;
      const step = STEP_OF_PHASE[ev.phase] || 'download';
      if (s.phase !== ev.phase) {
        for (const st of STEPS.slice(0, STEPS.indexOf(step))) s.done.add(st);
        s.phase = ev.phase; s.speed = 0; s.lastSample = null; s.resumedFrom = 0;
        if (ev.phase === 'copy') s.copying = true;
      }
      // speed and time left come from the bytes moved in this run: a resumed download
      // starts counting at resumed_from, never at 0
      if (ev.phase === 'download' && Number(ev.resumed_from) > 0) s.resumedFrom = Number(ev.resumed_from);
      if (!s.lastSample && s.resumedFrom > 0 && ev.done >= s.resumedFrom) s.lastSample = { t: now, done: ev.done };
      if (s.retry && ev.done !== s.doneBytes) s.retry = null;
      s.step = step;
      if (ev.done !== s.doneBytes || s.lastProgressAt == null) s.lastProgressAt = now;
      if (s.lastSample && now > s.lastSample.t && ev.done >= s.lastSample.done) {
        const rate = (ev.done - s.lastSample.done) / ((now - s.lastSample.t) / 1000);
        s.speed = s.speed ? 0.7 * s.speed + 0.3 * rate : rate; // smoothed, so the numbers stay calm
      }
      if (!s.lastSample || now - s.lastSample.t >= 250) s.lastSample = { t: now, done: ev.done };
      s.doneBytes = ev.done; s.totalBytes = ev.total; s.stalled = false;
    }

    _engine(ev) {
      const s = this.s;
      s.engine = ev;
      if (ev.state === 'running') { s.done = new Set(STEPS); s.step = null; s.failedEngine = null; s.repair = null; }
      if (ev.state === 'failed') s.failedEngine = ev;
    }

    tick(now = Date.now()) {
      this.now = now;
      const s = this.s;
      const installing = !s.error && !s.cancelled && !s.ready && s.lastProgressAt != null;
      s.stalled = installing && now - s.lastProgressAt >= STALL_MS;
      this.render();
    }

    act(name, arg) {
      if (name === 'cancel') { this.s.cancelled = true; this.s.stalled = false; }
      if (['retry', 'cpu', 'folder', 'location', 'repair', 'auto'].includes(name)) this.reset();
      if (name === 'wait') { this.s.lastProgressAt = this.now; this.s.stalled = false; }
      this.bridge.act(name, arg);
      this.render();
    }

    // ---- rendering -------------------------------------------------------------
    render() {
      const s = this.s;
      const variant = s.selected && s.selected.variant;
      const sentence = variant ? D.engineSentence(s.hardware, variant) : null;
      const running = s.engine && s.engine.state === 'running';
      let title; let engineLine = ''; let numbers = ''; let pct = null; let notice = null; let actions = [];

      if (s.failedEngine) {
        title = 'The engine could not start';
        engineLine = sentence ? `The ${sentence}` : '';
        const cpuToo = variant && D.engineOf(variant).kind !== 'cpu';
        const repaired = s.repair && s.repair.state === 'done';
        notice = { kind: 'error', heading: 'PEFT Studio tried to start its engine and it stopped.',
          body: repaired
            ? 'PEFT Studio checked the engine\'s files and repaired them, and it still did not start. The log has the engine\'s own words.'
            : 'Repairing the engine checks every file against its signature and replaces what is damaged. The log has the engine\'s own words.',
          detail: D.windowDetail({ message: s.failedEngine.message }) };
        actions = ['repair', 'retry', ...(cpuToo ? ['cpu'] : []), 'log'];
      } else if (s.error) {
        const advice = D.errorAdvice(s.error, { hardware: s.hardware, variant });
        title = advice.title;
        engineLine = sentence ? `For the ${sentence}` : s.hardware ? `This computer: ${D.machineWords(s.hardware)}` : '';
        notice = { kind: 'error', heading: '', body: advice.body, detail: D.windowDetail(s.error) };
        actions = advice.actions;
      } else if (s.cancelled) {
        title = 'Installation paused';
        engineLine = sentence ? `The ${sentence}` : '';
        notice = { kind: 'info', heading: '', body: 'What was already downloaded is kept: the next try continues from there.' };
        actions = ['retry', 'folder'];
        pct = s.totalBytes ? s.doneBytes / s.totalBytes : null;
      } else if (running) {
        title = 'PEFT Studio is ready';
        engineLine = `The ${D.engineSentence(s.hardware, s.engine.variant || variant)} is running (${s.engine.version || ''}).`;
        pct = 1;
        actions = ['engine'];
        if (s.update && s.update.state === 'staged') {
          notice = { kind: 'good', heading: 'A new engine is ready', body: `Version ${s.update.version} has been downloaded in the background. Restart to use it; your work is kept.` };
          actions = ['restart', 'engine'];
        }
      } else if (s.ready || s.engine) {
        const st = s.engine && s.engine.state;
        const repairing = s.repair && s.repair.state === 'running';
        title = repairing ? 'Repairing the engine…' : st === 'restarting' ? 'Restarting the engine…' : st === 'exited' ? 'The engine stopped' : 'Starting the engine…';
        if (repairing) notice = { kind: 'info', heading: '', body: 'The engine did not start. PEFT Studio is checking its files against their signature and replacing what is damaged; then it starts it again.' };
        engineLine = sentence ? `The ${sentence}` : '';
        numbers = s.ready && s.ready.source === 'cache' ? 'Already installed: nothing to download.' : 'Installed and verified.';
        pct = null;
      } else if (s.phase) {
        const verb = PHASE_VERB[s.phase] || 'Installing';
        title = variant ? `${verb} the ${D.engineOf(variant).words}` : `${verb} the engine`;
        engineLine = sentence ? `The ${sentence}` : '';
        pct = s.totalBytes ? Math.min(1, s.doneBytes / s.totalBytes) : null;
        numbers = D.transferWords({ phase: s.phase, done: s.doneBytes, total: s.totalBytes, resumedFrom: s.resumedFrom, speed: s.speed, stalled: s.stalled });
        actions = ['cancel'];
      } else {
        title = 'Getting PEFT Studio ready';
        engineLine = s.hardware ? 'Looking at this computer to pick the right engine…' : 'Checking this computer…';
        actions = s.startedAt != null ? ['cancel'] : [];
      }
      if (s.stalled) {
        notice = { kind: 'warn', heading: 'No progress for a minute', body: 'The connection may have stalled. You can keep waiting, try again (the download continues where it stopped), or install from a folder.' };
        actions = ['wait', 'retry', 'folder', 'log', 'cancel'];
      }
      if (s.retry && !s.error && !s.cancelled && !running && !s.stalled) {
        notice = { kind: 'warn', heading: D.retryWords(s.retry, s.retry.at + (Number(s.retry.wait_ms) || 0) - this.now), body: '' };
      }
      if (!notice && s.warnings.length && !running) notice = { kind: 'info', heading: '', body: s.warnings[s.warnings.length - 1] };

      this._text('title', title);
      this._text('engine', engineLine);
      this._text('numbers', numbers);
      this._bar(pct, s.error || s.failedEngine ? 'error' : s.stalled ? 'warn' : running ? 'done' : '');
      this._steps(running);
      const dl = this.el('steps').querySelector('[data-step=download]');
      if (dl) dl.textContent = s.copying ? 'Copy' : 'Download';
      this._notice(notice);
      this._actions(actions);
      this.doc.body.dataset.state = s.failedEngine || s.error ? 'error' : s.stalled ? 'stalled' : s.cancelled ? 'cancelled' : running ? 'running' : s.phase || (s.ready ? 'starting' : 'checking');
    }

    _text(id, text) { const e = this.el(id); if (e) { e.textContent = text || ''; e.hidden = !text; } }

    _bar(pct, tone) {
      const bar = this.el('bar');
      const fill = this.el('fill');
      bar.className = `bar ${tone}${pct == null ? ' indeterminate' : ''}`;
      if (pct == null) { bar.removeAttribute('aria-valuenow'); fill.style.width = ''; } else {
        const p = Math.round(pct * 1000) / 10;
        bar.setAttribute('aria-valuenow', String(p));
        fill.style.width = `${p}%`;
      }
    }

    _steps(running) {
      for (const li of this.el('steps').querySelectorAll('li')) {
        const st = li.dataset.step;
        li.className = running || this.s.done.has(st) ? 'done' : st === this.s.step ? (this.s.error || this.s.failedEngine ? 'failed' : 'current') : '';
      }
    }

    _notice(n) {
      const box = this.el('notice');
      box.hidden = !n;
      if (!n) return;
      box.className = `notice ${n.kind}`;
      this._text('notice-heading', n.heading);
      this._text('notice-body', n.body);
      this._text('notice-detail', n.detail);
    }

    _actions(list) {
      const box = this.el('actions');
      const key = list.join(',');
      if (box.dataset.key === key) return;
      box.dataset.key = key;
      box.textContent = '';
      list.forEach((name, i) => {
        const b = this.doc.createElement('button');
        b.type = 'button';
        b.dataset.action = name;
        b.textContent = D.ACTION_LABELS[name] || name;
        b.className = i === 0 && name !== 'cancel' ? 'primary' : name === 'cancel' ? 'quiet' : '';
        b.addEventListener('click', () => this.act(name));
        box.appendChild(b);
      });
    }
  }

  const recorded = [];
  const bridge = window.peft || { act: (name, arg) => recorded.push(arg === undefined ? name : [name, arg]), onEvent: null };
  window.peftActions = recorded;
  const view = new View(document, bridge);
  window.peftView = view;
  if (window.peft && window.peft.onEvent) {
    window.peft.onEvent((ev) => view.feed(ev));
    setInterval(() => view.tick(), 1000);
  }
}());
