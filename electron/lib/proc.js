'use strict';
// Process facts and process-group stopping, per OS.
//
// The engine runs in its own process group (spawned detached on POSIX), so one
// signal reaches it and anything it started. Stopping = SIGTERM to the group,
// SIGKILL to the group after `graceMs` (1 s), then wait until no member is left.
// On Windows there are no groups: the engine sits in a Job Object that kills the
// whole tree when the app's handle closes (winjob.js), and stop uses taskkill /T.

const fs = require('node:fs');
const { execFileSync } = require('node:child_process');

const IS_LINUX = process.platform === 'linux';
const IS_WIN = process.platform === 'win32';

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

/** Linux /proc/<pid>/stat fields after "comm": [state, ppid, pgrp, ...]; null if gone. */
function procStat(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Is `pid` a live (not zombie) process? */
function alive(pid) {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (IS_LINUX) {
    const st = procStat(pid);
    return st != null && st[0] !== 'Z' && st[0] !== 'X';
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

/**
 * When the process started, as an opaque string that differs for a new process
 * that reuses the pid: Linux clock ticks since boot (/proc stat field 22), macOS
 * `ps -o lstart`, Windows the creation FILETIME. null when it is gone.
 */
function startTime(pid) {
  if (!alive(pid)) return null;
  try {
    if (IS_LINUX) return `ticks:${procStat(pid)[19]}`;
    if (IS_WIN) {
      const out = execFileSync('powershell.exe', ['-NoProfile', '-Command',
        `(Get-Process -Id ${pid}).StartTime.ToFileTimeUtc()`], { encoding: 'utf8', windowsHide: true });
      return `filetime:${out.trim()}`;
    }
    const out = execFileSync('ps', ['-o', 'lstart=', '-p', String(pid)], { encoding: 'utf8' });
    return out.trim() ? `lstart:${out.trim()}` : null;
  } catch {
    return null;
  }
}

/** The executable a process runs, where the OS tells (Linux); null otherwise. */
function exePath(pid) {
  if (!IS_LINUX) return null;
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, '');
  } catch {
    return null;
  }
}

/** Live members of process group `pgid` (POSIX). Linux reads /proc; elsewhere kill(-pgid, 0). */
function groupAlive(pgid) {
  if (IS_WIN) return alive(pgid);
  if (IS_LINUX) {
    for (const name of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const st = procStat(Number(name));
      if (st && st[2] === String(pgid) && st[0] !== 'Z' && st[0] !== 'X') return true;
    }
    return false;
  }
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

function signalGroup(pgid, sig) {
  if (IS_WIN) {
    try {
      execFileSync('taskkill', ['/PID', String(pgid), '/T', ...(sig === 'SIGKILL' ? ['/F'] : [])],
        { stdio: 'ignore', windowsHide: true });
    } catch { /* already gone */ }
    return;
  }
  try {
    process.kill(-pgid, sig);
  } catch (err) {
    if (err.code !== 'ESRCH') throw err;
  }
}

async function waitGone(pgid, timeoutMs, intervalMs = 20) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!groupAlive(pgid)) return true;
    await sleep(intervalMs);
  }
  return !groupAlive(pgid);
}

/**
 * Stop a process group: SIGTERM, then SIGKILL after graceMs, then wait until gone.
 * Resolves to { how: 'gone'|'sigterm'|'sigkill', ms } (ms: until nothing was left).
 */
async function stopGroup(pgid, { graceMs = 1000, killWaitMs = 5000 } = {}) {
  const t0 = Date.now();
  if (!groupAlive(pgid)) return { how: 'gone', ms: 0 };
  signalGroup(pgid, 'SIGTERM');
  if (await waitGone(pgid, graceMs)) return { how: 'sigterm', ms: Date.now() - t0 };
  signalGroup(pgid, 'SIGKILL');
  if (await waitGone(pgid, killWaitMs)) return { how: 'sigkill', ms: Date.now() - t0 };
  throw new Error(`process group ${pgid} is still alive ${Date.now() - t0} ms after SIGKILL`);
}

module.exports = { alive, startTime, exePath, groupAlive, signalGroup, waitGone, stopGroup, sleep, IS_WIN, IS_LINUX };
