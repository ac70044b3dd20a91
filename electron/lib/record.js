'use strict';
// The engine record: which engine this app started, so the next launch can stop a
// leftover (after a crash of the app, a power cut of the UI process, a debugger...)
// and never anybody else's process.
//
// <app dir>/engine.json = { pid, pgid, startTime, executable, launcherPid, port, recordedAt }
// written atomically when an engine starts, removed when it is stopped. On the next
// launch `stopLeftover` stops the recorded process group only when the pid is alive,
// its start time is exactly the recorded one (a reused pid has another), and, where
// the OS tells, it runs the recorded executable. Anything else is left alone.

const fs = require('node:fs');
const path = require('node:path');
const proc = require('./proc');

const NAME = 'engine.json';

function recordPath(appDir) { return path.join(appDir, NAME); }

function writeRecord(appDir, { pid, pgid = pid, executable, port }) {
  const data = {
    pid, pgid, startTime: proc.startTime(pid), executable, exe: proc.exePath(pid),
    launcherPid: process.pid, port, recordedAt: new Date().toISOString(),
  };
  fs.mkdirSync(appDir, { recursive: true });
  const file = recordPath(appDir);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(data, null, 2));
  fs.renameSync(tmp, file);
  return data;
}

function readRecord(appDir) {
  try {
    return JSON.parse(fs.readFileSync(recordPath(appDir), 'utf8'));
  } catch {
    return null;
  }
}

function clearRecord(appDir, pid) {
  const rec = readRecord(appDir);
  if (rec && (pid === undefined || rec.pid === pid)) fs.rmSync(recordPath(appDir), { force: true });
}

/** Is the process now behind `rec.pid` provably the one recorded? Returns [bool, why]. */
function provesOurs(rec) {
  if (!rec || !Number.isInteger(rec.pid)) return [false, 'no usable record'];
  if (!proc.alive(rec.pid)) return [false, `pid ${rec.pid} is not running`];
  const now = proc.startTime(rec.pid);
  if (!rec.startTime || now !== rec.startTime) {
    return [false, `pid ${rec.pid} started at ${now}, not at the recorded ${rec.startTime}: another process reuses it`];
  }
  const exe = proc.exePath(rec.pid);
  if (rec.exe && exe && exe !== rec.exe) return [false, `pid ${rec.pid} runs ${exe}, not the recorded ${rec.exe}`];
  return [true, `pid ${rec.pid} started at ${now} as recorded`];
}

/**
 * Stop the engine an earlier launch left running, if the record proves it ours.
 * Resolves to { stopped, why, pid } and removes the record either way.
 */
async function stopLeftover(appDir, log = () => {}) {
  const rec = readRecord(appDir);
  if (!rec) return { stopped: false, why: 'no engine record', pid: null };
  const [ours, why] = provesOurs(rec);
  let result = { stopped: false, why, pid: rec.pid };
  if (ours) {
    const how = await proc.stopGroup(rec.pgid || rec.pid);
    result = { stopped: true, why: `${why}; stopped (${how.how}, ${how.ms} ms)`, pid: rec.pid };
  }
  log(`leftover engine: ${result.why}`);
  fs.rmSync(recordPath(appDir), { force: true });
  return result;
}

module.exports = { writeRecord, readRecord, clearRecord, provesOurs, stopLeftover, recordPath };
