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

const { spawn } = require('node:child_process');

const HELPER = String.raw`
$ErrorActionPreference = 'Stop'
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
  constructor(log = () => {}) {
    this.log = log;
    this.helper = null;
  }

  start() {
    if (process.platform !== 'win32' || this.helper) return this;
    const encoded = Buffer.from(HELPER, 'utf16le').toString('base64');
    this.helper = spawn('powershell.exe', ['-NoLogo', '-NoProfile', '-NonInteractive', '-EncodedCommand', encoded],
      { stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    this.helper.stdout.on('data', (c) => this.log(`job object: ${c.toString().trim()}`));
    this.helper.stderr.on('data', (c) => this.log(`job object helper: ${c.toString().trim()}`));
    this.helper.on('exit', (code) => { this.log(`job object helper exited (${code})`); this.helper = null; });
    this.helper.stdin.on('error', () => {});
    return this;
  }

  /** Put a process in the job (asynchronously; the helper answers ok/fail in the log). */
  assign(pid) {
    if (!this.helper) this.start();
    if (this.helper) this.helper.stdin.write(`${pid}\n`);
  }

  /** Closing the job kills its processes: only for quit, after the engine was stopped. */
  close() {
    if (this.helper) this.helper.stdin.end();
  }
}

module.exports = { JobObject, HELPER };
