"""Pure functions: variant -> accelerator, data dirs, probe maths, build-bundle's choices."""

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import pytest

from conftest import BACKEND

sys.path.insert(0, str(BACKEND))
from peft_engine import paths, probe  # noqa: E402
from peft_engine.buildinfo import accelerator_for_variant  # noqa: E402


def load_build_bundle():
    loader = importlib.machinery.SourceFileLoader("build_bundle", str(BACKEND / "build-bundle"))
    spec = importlib.util.spec_from_loader("build_bundle", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.mark.parametrize("variant,acc", [
    ("linux-x86_64-cpu", "cpu"), ("linux-x86_64-cuda12.8", "cuda"), ("windows-x86_64-cuda13.0", "cuda"),
    ("macos-arm64-metal", "mps"), ("linux-x86_64-rocm6.2", "rocm"), ("dev", "cpu"),
])
def test_accelerator_for_variant(variant, acc):
    assert accelerator_for_variant(variant) == acc


def test_data_dir_override(monkeypatch, tmp_path):
    monkeypatch.setenv("PEFT_DATA_DIR", str(tmp_path))
    assert paths.adapter_dir("j1") == tmp_path / "adapters" / "j1"


@pytest.mark.parametrize("plat,expected", [
    ("linux", Path(".local/share/PEFT Studio")),
    ("darwin", Path("Library/Application Support/PEFT Studio")),
])
def test_data_dir_defaults(monkeypatch, tmp_path, plat, expected):
    monkeypatch.delenv("PEFT_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setattr(paths.sys, "platform", plat)
    monkeypatch.setattr(paths.Path, "home", staticmethod(lambda: tmp_path))
    assert paths.data_dir() == tmp_path / expected


def test_data_dir_windows(monkeypatch, tmp_path):
    monkeypatch.delenv("PEFT_DATA_DIR", raising=False)
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    monkeypatch.setattr(paths.sys, "platform", "win32")
    assert paths.data_dir() == tmp_path / "Roaming" / "PEFT Studio"


def test_probe_reference_is_right():
    a, b = probe._matrices(4)
    want = [[sum(a[i][k] * b[k][j] for k in range(4)) for j in range(4)] for i in range(4)]
    assert probe._reference(a, b) == want
    assert probe._max_err(want, want) == 0
    bad = [row[:] for row in want]
    bad[2][3] += 1
    assert probe._max_err(bad, want) == 1


@pytest.mark.parametrize("variant,family,tag", [
    ("linux-x86_64-cpu", "cpu", "cpu"), ("linux-x86_64-cuda12.8", "cuda", "cuda12.8"),
    ("macos-arm64-metal", "metal", "metal"), ("linux-x86_64-rocm6.2", "rocm", "rocm6.2"),
])
def test_build_bundle_accelerator_of(variant, family, tag):
    assert load_build_bundle().accelerator_of(variant) == (family, tag)


def test_build_bundle_requirement_names():
    bb = load_build_bundle()
    assert bb.requirement_names("core", "cuda", "cuda12.8") == ["core.txt"]
    # a CUDA variant never falls back to another CUDA major version
    assert bb.requirement_names("full", "cuda", "cuda12.8") == ["full-cuda12.8.txt", "full-cuda12.txt"]
    assert bb.requirement_names("full", "cpu", "cpu") == ["full-cpu.txt"]
    assert bb.requirement_names("full", "rocm", "rocm6.2") == ["full-rocm6.2.txt", "full-rocm.txt"]


def test_build_bundle_missing_requirements_is_a_clear_error():
    bb = load_build_bundle()
    with pytest.raises(bb.BuildError) as err:
        bb.requirements_file("full", "cuda", "cuda11.1")
    assert "full-cuda11.1.txt" in str(err.value) and err.value.status == 2


def test_every_committed_requirement_is_hashed():
    for req in (BACKEND / "requirements").glob("*.txt"):
        lines = [l.strip() for l in req.read_text().splitlines() if l.strip() and not l.lstrip().startswith("#")]
        pins = [l for l in lines if not l.startswith("--hash") and not l.startswith("-")]
        assert pins, req
        for pin in pins:
            assert "==" in pin and pin.endswith("\\"), f"{req.name}: {pin!r} is not pinned with hashes"


def test_self_check_names_the_missing_module(monkeypatch, capsys):
    import json

    from peft_engine import cli
    assert cli.self_check() == 0
    capsys.readouterr()
    monkeypatch.setattr(cli, "CORE_MODULES", cli.CORE_MODULES + ("no_such_module_xyz",))
    assert cli.self_check() == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert [m["module"] for m in report["missing"]] == ["no_such_module_xyz"]


def test_self_check_full_checks_data_files(monkeypatch, capsys):
    import json

    from peft_engine import cli
    monkeypatch.setitem(cli.BUILD_INFO, "profile", "full")
    monkeypatch.setattr(cli, "FULL_MODULES", ())
    monkeypatch.setattr(cli, "FULL_DATA_FILES", (("peft_engine", "no/such/file.txt"), ("peft_engine", "cli.py")))
    assert cli.self_check() == 1
    report = json.loads(capsys.readouterr().out)
    assert [m["error"] for m in report["missing"]] == ["data file peft_engine/no/such/file.txt is missing"]


def test_tree_stats_records_inner_symlinks_and_refuses_escaping_ones(tmp_path):
    import os
    bb = load_build_bundle()
    root = tmp_path / "peft_engine"
    (root / "_internal" / "nvidia").mkdir(parents=True)
    (root / "_internal" / "nvidia" / "libx.so").write_bytes(b"12345")
    (root / "peft_engine").write_bytes(b"exe")
    os.symlink("nvidia/libx.so", root / "_internal" / "libx.so")
    files, size, links = bb.tree_stats(str(root))
    assert (files, size) == (2, 8)
    assert links == [{"path": "_internal/libx.so", "target": "nvidia/libx.so"}]
    os.symlink("../../outside", root / "_internal" / "evil")
    with pytest.raises(bb.BuildError, match="symlink leaving it"):
        bb.tree_stats(str(root))


def _fake_python(tmp_path, version, shared, plat="linux"):
    script = tmp_path / "python-fake"
    facts = {"version": version, "shared": shared, "framework": False, "platform": plat, "executable": str(script)}
    import json
    script.write_text(f"#!/bin/sh\necho '{json.dumps(facts)}'\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as a fake Python")
def test_build_bundle_refuses_old_python(tmp_path):
    bb = load_build_bundle()
    with pytest.raises(bb.BuildError, match=r"is 3\.9\.18; the engine needs Python >= 3\.10") as err:
        bb.check_python(_fake_python(tmp_path, [3, 9, 18], True))
    assert err.value.status == 2


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as a fake Python")
def test_build_bundle_refuses_python_without_shared_libpython(tmp_path):
    bb = load_build_bundle()
    with pytest.raises(bb.BuildError, match="has no shared libpython.*--enable-shared"):
        bb.check_python(_fake_python(tmp_path, [3, 11, 7], False))
    assert bb.check_python(_fake_python(tmp_path, [3, 11, 7], True))["shared"] is True


def test_build_bundle_tells_hashed_from_unhashed_requirements(tmp_path):
    bb = load_build_bundle()
    assert bb.is_hashed(BACKEND / "requirements" / "core.txt")
    plain = tmp_path / "requirements.txt"
    plain.write_text("# a comment with --hash=sha256:x\nfastapi==0.1\n")
    assert not bb.is_hashed(plain)
    blocks = bb.pinned_blocks(BACKEND / "requirements" / "core.txt")
    assert blocks["pyinstaller"][0].startswith("pyinstaller==") and all("--hash=sha256:" in line
                                                                         for line in blocks["pyinstaller"][1:])
    assert set(bb.TOOL_NAMES) <= set(blocks), "every build tool an app may lack is pinned in core.txt"


def test_build_bundle_app_dir_packages(tmp_path):
    bb = load_build_bundle()
    for pkg in ("app", "tests", ".hidden", "plugins"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "no_init").mkdir()
    for mod in ("main.py", "setup.py", "conftest.py", "worker.py", "not-a-name.py", "notes.txt"):
        (tmp_path / mod).write_text("")
    assert bb.app_dir_packages(str(tmp_path)) == ["app", "main", "plugins", "worker"]


@pytest.mark.parametrize("argv,message", [
    (["--variant", "v", "--out", "o"], "needs --profile core or --profile full"),
    (["--variant", "v", "--out", "o", "--profile", "core", "--app-dir", "."], "need --asgi"),
    (["--variant", "v", "--out", "o", "--asgi", "main:app"], "--asgi needs --requirements"),
    (["--variant", "v", "--out", "o", "--asgi", "main", "--requirements", "x"], "must be MODULE:ATTR"),
    (["--variant", "v", "--out", "o", "--asgi", "main:app", "--requirements", "/no/such/file"], "no such file"),
])
def test_build_bundle_app_flags_are_checked(argv, message, capsys):
    bb = load_build_bundle()
    with pytest.raises(SystemExit) as exc:
        bb.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_build_bundle_fails_naming_the_module_the_frozen_self_check_misses(tmp_path):
    bb = load_build_bundle()
    exe = tmp_path / "app"
    exe.write_text('#!/bin/sh\necho \'{"event":"self-check","ok":false,"checked":3,"missing":'
                   '[{"module":"myapp.plugins.pdf","error":"ModuleNotFoundError: No module named \\u0027fitz\\u0027"}]}\'\n'
                   'exit 1\n')
    exe.chmod(0o755)
    with pytest.raises(bb.BuildError) as exc:
        bb.check_bundle(str(exe), {"name": "myapp", "app": "myapp.main:app", "profile": "app", "version": "1",
                                   "variant": "linux-x86_64-cpu"}, "cpu", False)
    assert "myapp.plugins.pdf (ModuleNotFoundError: No module named 'fitz')" in str(exc.value)
    assert "--collect" in str(exc.value)
