"""build-bundle's code signing hook (PEFT_SIGN_COMMAND): which files, in which order,
and that a failing signer fails the build. The signer here is a real script that
records its arguments; the real signers (signtool, codesign) run in the release
workflow (docs/RELEASING.md, "Code signing")."""

import importlib.machinery
import importlib.util
import json
import os
import pathlib
import stat
import sys

import pytest

BACKEND = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bb():
    loader = importlib.machinery.SourceFileLoader("build_bundle_sign", str(BACKEND / "build-bundle"))
    spec = importlib.util.spec_from_loader("build_bundle_sign", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def tree(root):
    files = {
        "peft_engine/peft_engine.exe": b"MZ..",
        "peft_engine/_internal/python311.dll": b"MZ..",
        "peft_engine/_internal/torch/lib/c10.dll": b"MZ..",
        "peft_engine/_internal/pydantic_core/_core.cp311-win_amd64.pyd": b"MZ..",
        "peft_engine/_internal/base_library.zip": b"PK..",
        "peft_engine/_internal/data.json": b"{}",
        # macOS: Mach-O by magic, whatever the name
        "peft_engine/peft_engine": b"\xcf\xfa\xed\xfe rest",
        "peft_engine/_internal/libpython3.11.dylib": b"\xcf\xfa\xed\xfe rest",
        "peft_engine/_internal/numpy/_core/_multiarray.cpython-311-darwin.so": b"\xca\xfe\xba\xbe fat",
        "peft_engine/_internal/notes.txt": b"\xcf\xfa",  # too short to be Mach-O
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root / "peft_engine"


def rel(root, paths):
    return [os.path.relpath(p, root).replace(os.sep, "/") for p in paths]


def test_windows_signs_every_exe_dll_pyd_innermost_first(bb, tmp_path):
    root = tree(tmp_path)
    got = rel(root, bb.signable_files(str(root), "Windows"))
    assert sorted(got) == sorted(["peft_engine.exe", "_internal/python311.dll", "_internal/torch/lib/c10.dll",
                                  "_internal/pydantic_core/_core.cp311-win_amd64.pyd"])
    assert got[-1] == "peft_engine.exe", "the entry executable is signed last"
    assert got[0] == "_internal/torch/lib/c10.dll"


def test_macos_signs_every_mach_o_file(bb, tmp_path):
    root = tree(tmp_path)
    got = rel(root, bb.signable_files(str(root), "Darwin"))
    assert sorted(got) == sorted(["peft_engine", "_internal/libpython3.11.dylib",
                                  "_internal/numpy/_core/_multiarray.cpython-311-darwin.so"])
    assert got[-1] == "peft_engine"


def recorder(tmp_path, status=0):
    log = tmp_path / "signed.jsonl"
    script = tmp_path / "fake-signer"
    script.write_text(f"#!{sys.executable}\nimport json, sys\n"
                      f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\nsys.exit({status})\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, log


def test_the_command_gets_the_files_appended_and_a_failure_fails_the_build(bb, tmp_path, monkeypatch):
    root = tree(tmp_path / "b")
    script, log = recorder(tmp_path)
    monkeypatch.setattr(bb.platform, "system", lambda: "Windows")
    monkeypatch.setenv("PEFT_SIGN_COMMAND", f"{script} --flag 'two words'")
    assert bb.sign_binaries(str(root)) == 4
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 1 and calls[0][:2] == ["--flag", "two words"]
    assert calls[0][-1].endswith("peft_engine.exe") and len(calls[0]) == 6

    (tmp_path / "x").mkdir()
    bad, _ = recorder(tmp_path / "x", status=3)
    monkeypatch.setenv("PEFT_SIGN_COMMAND", str(bad))
    with pytest.raises(bb.BuildError, match="status 3"):
        bb.sign_binaries(str(root))


def test_unsigned_builds_still_work_with_a_warning(bb, tmp_path, monkeypatch, capsys):
    root = tree(tmp_path)
    monkeypatch.delenv("PEFT_SIGN_COMMAND", raising=False)
    monkeypatch.setattr(bb.platform, "system", lambda: "Darwin")
    assert bb.sign_binaries(str(root)) is None
    assert "NOT code-signed (PEFT_SIGN_COMMAND is not set)" in capsys.readouterr().err
    monkeypatch.setattr(bb.platform, "system", lambda: "Linux")
    monkeypatch.setenv("PEFT_SIGN_COMMAND", "/bin/false")
    assert bb.sign_binaries(str(root)) is None, "Linux has no code signing: the hook is not run"
