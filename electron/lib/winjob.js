'use strict';
// Windows: tie the engine's life to the app's with a Job Object.
//
// Node cannot call CreateJobObject itself (no native addon here, on purpose: the
// launcher stays plain JavaScript). So one small helper process holds the job: a
// PowerShell that compiles four kernel32 calls with Add-Type, creates a job with
// JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, reads engine pids on its stdin and assigns
// each to the job (answering "ok <pid>" or "fail <pid>"). Its stdin is a pipe from
// this process: when the app ends, however it ends, the pipe closes, the helper
// exits, the last handle to the job closes, and Windows kills every process in it:
// the engine and anything it started after it was assigned.
//
// The engine also watches its own stdin (PEFT_PARENT_FD=0), which works on Windows
// too; the job is the OS-level guarantee on top. This file cannot run on the Linux
// machines the tests run on; docs/ELECTRON.md says how to check it by hand.
//
// Managed PCs often run PowerShell in Constrained Language Mode (AppLocker / WDAC),
// which forbids Add-Type. The helper checks its language mode first and answers
// "unavailable <mode>"; then (or when PowerShell is missing or fails) the job is
// given up for this run, said once in the log, and never retried: the engine's own
// parent watch is what ends it with the app there. That is enough because the
// engine starts no lasting processes of its own (backend/peft_engine's one
// subprocess call is a momentary `sysctl` on macOS; no multiprocessing), so the job
// would hold exactly one process, the one the pipe watch ends (electron/test/lifeline.test.js kills a launcher with no job and
// sees the engine gone; ci.yml runs it on Windows).

const { spawn } = require('node:child_process');

const HELPER = String.raw`
$ErrorActionPreference = 'Stop'
if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') {
  Write-Output ('unavailable ' + $ExecutionContext.SessionState.LanguageMode); exit 3
}
Add-Type -TypeDefinition @"
using System;
using System.Runtime.InteropServices;
public static class PeftJob {
  [StructLayout(LayoutKind.Sequential)] public struct Basic {
    public long PerProcessUserTimeLimit; public long PerJobUserTimeLimit; public uint LimitFlags;
    public UIntPtr MinimumWorkingSetSize; public UIntPtr MaximumWorkingSetSize; public uint ActiveProcessLimit;
    public UIntPtr Affinity; public uint PriorityClass; public uint SchedulingClass; }
  [StructLayout(LayoutKind.Sequential)] public struct Io {
    public ulong ReadOps, WriteOps, OtherOps, ReadBytes, WriteBytes, OtherBytes; }
  [StructLayout(LayoutKind.Sequential)] public struct Extended {
    public Basic BasicLimits; public Io IoInfo; public UIntPtr ProcessMemoryLimit; public UIntPtr JobMemoryLimit;
    public UIntPtr PeakProcessMemoryUsed; public UIntPtr PeakJobMemoryUsed; }
  [DllImport("kernel32.dll", CharSet = CharSet.Unicode, SetLastError = true)] static extern IntPtr CreateJobObject(IntPtr attrs, string name);
  [DllImport("kernel32.dll", SetLastError = true)] static extern bool SetInformationJobObject(IntPtr job, int cls, ref Extended info, uint len);
  [DllImport("kernel32.dll", SetLastError = true)] static extern bool AssignProcessToJobObject(IntPtr job, IntPtr process);
  [DllImport("kernel32.dll", SetLastError = true)] static extern IntPtr OpenProcess(uint access, bool inherit, uint pid);
  public static IntPtr Create() {
    IntPtr job = CreateJobObject(IntPtr.Zero, null);
    if (job == IntPtr.Zero) throw new Exception("CreateJobObject failed: " + Marshal.GetLastWin32Error());
    Extended info = new Extended();
    info.BasicLimits.LimitFlags = 0x2000; // JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
    if (!SetInformationJobObject(job, 9, ref info, (uint)Marshal.SizeOf(typeof(Extended))))  // JobObjectExtendedLimitInformation
      throw new Exception("SetInformationJobObject failed: " + Marshal.GetLastWin32Error());
    return job;
  }
  public static bool Assign(IntPtr job, uint pid) {
    IntPtr p = OpenProcess(0x0100 | 0x0001, false, pid); // PROCESS_SET_QUOTA | PROCESS_TERMINATE
    return p != IntPtr.Zero && AssignProcessToJobObject(job, p);
  }
}
"@
$job = [PeftJob]::Create()
[Console]::Out.WriteLine('ready'); [Console]::Out.Flush()
while ($null -ne ($line = [Console]::In.ReadLine())) {
  $pid_ = [uint32]$line.Trim()
  if ([PeftJob]::Assign($job, $pid_)) { [Console]::Out.WriteLine("ok $pid_") } else { [Console]::Out.WriteLine("fail $pid_") }
  [Console]::Out.Flush()
}
`;

class JobObject {
  constructor(log = () => {}, { shell = 'powershell.exe', platform = process.platform } = {}) {
    this.log = log;
    this.shell = shell;
    this.platform = platform;
    this.helper = null;
    this.ready = false;
    this.unavailable = null; // why the job cannot be had in this run (then it is not retried)
  }

  start() {
    if (this.platform !== 'win32' || this.helper || this.unavailable) return this;
    const encoded = Buffer.from(HELPER, 'utf16le').toString('base64');
    let helper;
    try {
      helper = spawn(this.shell, ['-NoLogo', '-NoProfile', '-NonInteractive', '-EncodedCommand', encoded],
        { stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    } catch (err) {
      this._giveUp(`PowerShell could not start (${err.message})`);
      return this;
    }
    this.helper = helper;
    let errText = '';
    helper.stdout.on('data', (c) => {
      for (const line of c.toString().split(/\r?\n/).filter(Boolean)) {
        if (line === 'ready') this.ready = true;
        const m = /^unavailable (\S+)/.exec(line);
        if (m) this._giveUp(`PowerShell runs in ${m[1]} mode, which forbids compiling the Job Object calls`);
        this.log(`job object: ${line}`);
      }
    });
    helper.stderr.on('data', (c) => { errText = (errText + c.toString()).slice(-500); this.log(`job object helper: ${c.toString().trim()}`); });
    helper.on('error', (err) => this._giveUp(`PowerShell could not start (${err.message})`));
    helper.on('exit', (code) => {
      this.log(`job object helper exited (${code})`);
      if (this.helper === helper) this.helper = null;
      if (!this.ready) this._giveUp(`the helper ended before the job existed (status ${code}${errText ? `: ${errText.trim()}` : ''})`);
    });
    helper.stdin.on('error', () => {});
    return this;
  }

  _giveUp(why) {
    if (this.unavailable) return;
    this.unavailable = why;
    this.log(`job object unavailable: ${why}; the engine still ends with the app through its own parent watch (PEFT_PARENT_FD)`);
  }

  /** Put a process in the job (asynchronously; the helper answers ok/fail in the log). False when no job can be had. */
  assign(pid) {
    if (!this.helper) this.start();
    if (!this.helper || this.unavailable) return false;
    this.helper.stdin.write(`${pid}\n`);
    return true;
  }

  /** Closing the job kills its processes: only for quit, after the engine was stopped. */
  close() {
    if (this.helper) this.helper.stdin.end();
  }
}

module.exports = { JobObject, HELPER };
