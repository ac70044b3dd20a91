// The Engine page's behaviour: shows what lib/enginectl.js's info() returns, runs the
// self-test and sends the actions. No framework.
//
// Bridge (preload.js): window.peft = { ask(name, arg) -> Promise, act(name, arg), onEvent(cb) }.
//   ask('engine-info')              -> info (see lib/enginectl.js)
//   ask('selftest-start', steps)    -> { id } | { state, message } | { error }
//   ask('selftest-poll', id)        -> the engine's self-test object
//   ask('gc')                       -> { removed: [...], freed } | { error }
//   act('repair' | 'restart' | 'log'), act('switch', variantId)
// Tests in a plain browser inject the same bridge; window.peftEngineView is the view.
(function () {
  'use strict';
  const D = window.PeftDescribe;
  const E = window.PeftEngineInfo;
  const POLL_MS = 250;

  class EngineView {
    constructor(doc, bridge) {
      this.doc = doc;
      this.bridge = bridge;
      this.info = null;
      this.selfTest = null;
      this.el = (id) => doc.getElementById(id);
      for (const b of doc.querySelectorAll('button[data-action]')) b.addEventListener('click', () => this.onAction(b.dataset.action));
    }

    async load() {
      this.doc.body.dataset.state = 'loading';
      try {
        this.show(await this.bridge.ask('engine-info'));
      } catch (err) {
        this.show({ error: String(err && err.message ? err.message : err) });
      }
    }

    show(info) {
      this.info = info || {};
      const i = this.info;
      const r = i.running;
      this._text('subtitle', r
        ? `${D.engineSentence(i.detect && i.detect.hardware, r.variant).replace(/^./, (c) => c.toUpperCase())} is running (${r.version}).`
        : i.error ? `Could not ask the engine: ${i.error}` : 'The engine is not running.');
      this._rows('running-rows', E.runningRows(i));
      const u = E.updateState(i.update);
      const dev = i.mode === 'dev';
      this._text('update-text', dev ? 'Development mode: the engine runs from this checkout\'s source; nothing is downloaded or updated.' : u.text);
      this._buttons('update-actions', u.restart ? [['restart', 'Restart to update', 'primary']] : []);
      this._variants();
      this._installed();
      this.doc.body.dataset.state = 'shown';
    }

    _variants() {
      const i = this.info;
      const list = this.el('variants');
      list.textContent = '';
      const current = (i.running && i.running.variant) || (i.status && i.status.current && i.status.current.variant) || null;
      const choices = E.variantChoices(i.detect, current);
      if (!choices.length) {
        this._text('switch-note', i.detect && i.detect.error
          ? 'The list of engines cannot be fetched just now (details in the log). Try again later.'
          : 'No other engine is offered for this computer.');
        return;
      }
      this._text('switch-note', 'The engines offered for this computer, and whether each can run here.');
      for (const c of choices) {
        const li = this.doc.createElement('li');
        li.className = c.fits ? 'yes' : 'no';
        li.dataset.variant = c.id;
        const info = this.doc.createElement('div');
        const name = this._span('name', c.words);
        if (c.current) name.appendChild(this._span('badge', 'In use'));
        name.appendChild(this._span(`badge ${c.fits ? 'good' : 'bad'}`, c.fits ? 'Fits' : 'Does not fit'));
        info.appendChild(name);
        info.appendChild(this._block('why', `${c.id} ${c.version}${c.why ? ` — ${D.windowDetail({ message: c.why }) || ''}` : ''}`));
        li.appendChild(info);
        if (c.fits && !c.current) {
          const b = this.doc.createElement('button');
          b.type = 'button';
          b.dataset.action = 'switch';
          b.dataset.variant = c.id;
          b.textContent = 'Switch to this engine';
          b.addEventListener('click', () => this.bridge.act('switch', c.id));
          li.appendChild(b);
        }
        list.appendChild(li);
      }
    }

    _installed() {
      const i = this.info;
      const list = this.el('installed-list');
      list.textContent = '';
      const rows = E.installedRows(i.status);
      if (!rows.length) {
        const li = this.doc.createElement('li');
        li.appendChild(this._block('meta', i.mode === 'dev' ? 'Development mode: nothing is installed.'
          : i.status && i.status.error ? 'Cannot list the installed versions just now (details in the log).' : 'No installed versions listed.'));
        list.appendChild(li);
      }
      for (const r of rows) {
        const li = this.doc.createElement('li');
        const div = this.doc.createElement('div');
        const name = this._span('name', `${r.version} · ${D.engineOf(r.variant).words}`);
        if (r.current) name.appendChild(this._span('badge', 'In use'));
        if (r.staged) name.appendChild(this._span('badge good', 'Ready after restart'));
        if (r.refused) name.appendChild(this._span('badge warn', 'Set aside after a failed start'));
        div.appendChild(name);
        div.appendChild(this._block('meta', `${r.variant} · ${r.size}`));
        li.appendChild(div);
        list.appendChild(li);
      }
      this.el('gc').disabled = E.oldCount(i.status) === 0;
      this.el('gc').title = this.el('gc').disabled ? 'Nothing to remove: only the engine in use and the one before it are kept.' : '';
    }

    async onAction(name) {
      if (name === 'selftest') return this.runSelfTest();
      if (name === 'gc') {
        const res = await this.bridge.ask('gc');
        const out = this.el('gc-result');
        out.hidden = false;
        out.textContent = res && res.error ? `Could not remove old versions: ${D.windowDetail({ message: res.error })}`
          : `Removed ${(res && res.removed ? res.removed.length : 0)} old version(s), ${D.bytes(res && res.freed ? res.freed : 0) || '0 bytes'} freed.`;
        return this.load();
      }
      return this.bridge.act(name);
    }

    async runSelfTest() {
      const btn = this.el('selftest-run');
      btn.disabled = true;
      this.doc.body.dataset.selftest = 'running';
      this._selfTest({ state: 'running', message: 'Starting…' });
      try {
        const started = await this.bridge.ask('selftest-start', 8);
        if (started.error) { this._selfTest({ state: 'failed', message: started.error }); return; }
        if (!started.id) { this._selfTest(started); return; }
        for (;;) {
          const st = await this.bridge.ask('selftest-poll', started.id);
          this._selfTest(st);
          if (st.state !== 'running') return;
          await new Promise((r) => setTimeout(r, POLL_MS));
        }
      } catch (err) {
        this._selfTest({ state: 'failed', message: String(err && err.message ? err.message : err) });
      } finally {
        btn.disabled = false;
      }
    }

    _selfTest(st) {
      this.selfTest = st;
      const v = E.selfTestView(st);
      const box = this.el('selftest-result');
      box.hidden = false;
      box.className = `notice ${v.kind}`;
      this._text('selftest-title', v.title);
      this._rows('selftest-lines', v.lines);
      this._text('selftest-message', v.message);
      this.el('selftest-chart').hidden = !v.points;
      this.el('selftest-line').setAttribute('points', v.points);
      this.doc.body.dataset.selftest = st.state || '';
    }

    _rows(id, rows) {
      const dl = this.el(id);
      dl.textContent = '';
      for (const [k, v] of rows) {
        const dt = this.doc.createElement('dt'); dt.textContent = k;
        const dd = this.doc.createElement('dd'); dd.textContent = v;
        dl.append(dt, dd);
      }
      dl.hidden = rows.length === 0;
    }

    _buttons(id, list) {
      const box = this.el(id);
      box.textContent = '';
      for (const [action, label, cls] of list) {
        const b = this.doc.createElement('button');
        b.type = 'button'; b.dataset.action = action; b.textContent = label; if (cls) b.className = cls;
        b.addEventListener('click', () => this.onAction(action));
        box.appendChild(b);
      }
    }

    _span(cls, text) { const s = this.doc.createElement('span'); s.className = cls; s.textContent = text; return s; }
    _block(cls, text) { const s = this.doc.createElement('div'); s.className = cls; s.textContent = text; return s; }
    _text(id, text) { const e = this.el(id); if (e) { e.textContent = text || ''; e.hidden = !text; } }
  }

  const recorded = [];
  const bridge = window.peft && window.peft.ask ? window.peft : {
    ask: async () => ({}), act: (name, arg) => recorded.push(arg === undefined ? name : [name, arg]),
  };
  window.peftActions = recorded;
  const view = new EngineView(document, bridge);
  window.peftEngineView = view;
  if (window.peft && window.peft.onEvent) {
    // a staged update, an engine restart: show the news
    window.peft.onEvent((ev) => { if (ev.event === 'update' || (ev.event === 'engine' && ev.state === 'running')) view.load(); });
  }
  if (window.peft && window.peft.ask) view.load();
}());
