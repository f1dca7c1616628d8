"""A machine is named by what changes its kernels: CPU vendor / family / model / stepping and
flags, torch's CPU capability and BLAS, GPUs through NVML; env.json holds them, the machine
fingerprint and ``optbench compare`` use them, and old env.json files without them still load."""
from __future__ import annotations

import io
import json
import shutil
import sys
import types
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import main
from harness.results.compare import compare_runs, header_lines
from harness.results.load import machine_fingerprint, machine_label
from harness.run import machine_facts
from harness.site import runs as site_runs
from harness.testing import make_tiny_suite, run_suite_file

REPO = Path(__file__).resolve().parents[1]

# --- /proc/cpuinfo of three machines (first processor; the flag lines as their kernels print them) ---

SAPPHIRE_RAPIDS = """\
processor	: 0
vendor_id	: GenuineIntel
cpu family	: 6
model		: 143
model name	: Intel(R) Xeon(R) Platinum 8480+
stepping	: 8
microcode	: 0x2b000461
cpu MHz		: 2000.000
flags		: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse \
sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good nopl xtopology \
nonstop_tsc cpuid aperfmperf tsc_known_freq pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 sdbg fma cx16 \
xtpr pdcm pcid dca sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand lahf_lm abm \
3dnowprefetch cpuid_fault epb cat_l3 cat_l2 cdp_l3 invpcid_single intel_ppin cdp_l2 ssbd mba ibrs ibpb stibp \
ibrs_enhanced tpr_shadow flexpriority ept vpid ept_ad fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid cqm \
rdt_a avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb intel_pt avx512cd sha_ni avx512bw avx512vl \
xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc cqm_mbm_total cqm_mbm_local split_lock_detect avx_vnni \
avx512_bf16 wbnoinvd dtherm ida arat pln pts hfi vnmi avx512vbmi umip pku ospke waitpkg avx512_vbmi2 gfni vaes \
vpclmulqdq avx512_vnni avx512_bitalg tme avx512_vpopcntdq la57 rdpid bus_lock_detect cldemote movdiri movdir64b \
enqcmd fsrm md_clear serialize tsxldtrk pconfig arch_lbr ibt amx_bf16 avx512_fp16 amx_tile amx_int8 flush_l1d \
arch_capabilities
bugs		: spectre_v1 spectre_v2 spec_store_bypass swapgs eibrs_pbrsb
bogomips	: 4000.00

processor	: 1
vendor_id	: GenuineIntel
cpu family	: 6
model		: 143
"""

ZEN5 = """\
processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 26
model		: 2
model name	: AMD EPYC 9B45 128-Core Processor
stepping	: 1
microcode	: 0xb002116
flags		: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht \
syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl nonstop_tsc cpuid extd_apicid \
tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand \
hypervisor lahf_lm cmp_legacy cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw topoext ssbd ibrs ibpb stibp \
vmmcall fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid avx512f avx512dq rdseed adx smap avx512ifma \
clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves avx_vnni avx512_bf16 clzero \
xsaveerptr rdpru wbnoinvd arat avx512vbmi umip pku ospke avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni \
avx512_bitalg avx512_vpopcntdq rdpid fsrm avx512_vp2intersect flush_l1d
bogomips	: 5200.00
"""

NEOVERSE_V1 = """\
processor	: 0
BogoMIPS	: 2100.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc \
dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm \
bf16 dgh rng
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x1
CPU part	: 0xd40
CPU revision	: 1

processor	: 1
BogoMIPS	: 2100.00
"""


def test_cpuinfo_of_a_sapphire_rapids_names_its_amx() -> None:
    facts = machine_facts.parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert (facts["vendor_id"], facts["family"], facts["model"], facts["stepping"]) == ("GenuineIntel", 6, 143, 8)
    assert facts["model_name"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"amx_tile", "amx_bf16", "amx_int8", "avx512_fp16", "avx512_bf16", "avx512_vnni", "avx_vnni",
            "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd", "avx2", "fma", "f16c"} <= set(facts["flags"])
    assert "sse" not in facts["flags"] and "vmx" not in facts["flags"]  # the curated list, not the flag line
    assert facts["flags"] == sorted(facts["flags"])


def test_cpuinfo_of_a_zen5_names_its_family_and_lacks_amx() -> None:
    facts = machine_facts.parse_cpuinfo(ZEN5)
    assert (facts["vendor_id"], facts["family"], facts["model"], facts["stepping"]) == ("AuthenticAMD", 26, 2, 1)
    assert "avx512_bf16" in facts["flags"] and "avx512_vnni" in facts["flags"]
    assert not {"amx_tile", "avx512_fp16", "asimd"} & set(facts["flags"])


def test_cpuinfo_of_a_neoverse_names_its_part_and_sve() -> None:
    facts = machine_facts.parse_cpuinfo(NEOVERSE_V1)
    assert facts["vendor_id"] == "0x41" and facts["family"] == 8 and facts["model"] == "0xd40"
    assert facts["stepping"] == "r1p1" and facts["model_name"] == "ARM Neoverse-V1"
    assert {"asimd", "sve", "bf16", "i8mm", "svebf16", "svei8mm", "asimddp"} <= set(facts["flags"])
    assert "sve2" not in facts["flags"] and "avx" not in facts["flags"]


def test_torch_config_text_gives_short_build_facts() -> None:
    show = ("PyTorch built with:\n  - GCC 13.3\n  - Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build "
            "20240605 for Intel(R) 64 architecture applications\n  - Intel(R) MKL-DNN v3.5.3 (Git Hash 66f0cb9)\n"
            "  - OpenMP 201511 (a.k.a. OpenMP 4.5)\n  - Build settings: BLAS_INFO=mkl, BUILD_TYPE=Release, "
            "LAPACK_INFO=mkl, USE_MKL=ON, \n")
    parallel = ("ATen/Parallel:\n\tat::get_num_threads() : 8\n\tat::get_num_interop_threads() : 4\nOpenMP 201511\n"
                "\tomp_get_max_threads() : 8\nIntel(R) MKL\n\tmkl_get_max_threads() : 8\nATen parallel backend: OpenMP\n")
    facts = machine_facts.parse_torch_config(show, parallel)
    assert facts == {"blas": "mkl", "lapack": "mkl", "mkl": "2024.2", "onednn": "3.5.3", "openmp": "4.5",
                     "cuda": None, "compiler": "GCC 13.3", "parallel_backend": "OpenMP", "intra_op_threads": 8,
                     "inter_op_threads": 4, "omp_max_threads": 8, "mkl_max_threads": 8}
    arm = machine_facts.parse_torch_config("  - oneDNN v3.7.1\n  - Build settings: BLAS_INFO=open, LAPACK_INFO=open,")
    assert (arm["blas"], arm["onednn"], arm["mkl"]) == ("open", "3.7.1", None)


# --- GPUs through a fake pynvml ------------------------------------------------------------------

def fake_pynvml(names: list[str], driver: str = "550.54.15", fail_init: bool = False) -> types.ModuleType:
    mod = types.ModuleType("pynvml")
    calls: list[str] = []

    def init() -> None:
        calls.append("init")
        if fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    mod.nvmlInit = init  # type: ignore[attr-defined]
    mod.nvmlShutdown = lambda: calls.append("shutdown")  # type: ignore[attr-defined]
    mod.nvmlSystemGetDriverVersion = lambda: driver  # type: ignore[attr-defined]
    mod.nvmlDeviceGetCount = lambda: len(names)  # type: ignore[attr-defined]
    mod.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    mod.nvmlDeviceGetName = lambda h: names[h].encode()  # type: ignore[attr-defined]  # old bindings give bytes
    mod.nvmlDeviceGetUUID = lambda h: f"GPU-{h}abc-0000"  # type: ignore[attr-defined]
    mod.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=80 * 2**30)  # type: ignore[attr-defined]
    mod.calls = calls  # type: ignore[attr-defined]
    return mod


def test_fake_nvml_names_the_gpus_and_the_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    fake = fake_pynvml(["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,1")
    gpus, driver = machine_facts.gpu_facts()
    assert driver == "550.54.15" and fake.calls == ["init", "shutdown"]
    assert gpus == [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total_mb": 81920},
                    {"index": 1, "name": "NVIDIA H100 80GB HBM3", "memory_total_mb": 81920}]
    env = {"hostname": "h", "cpu_model": "c", "cores": 8, "gpus": gpus, "gpu_driver": driver}
    assert machine_fingerprint(env)["gpus"] == ["NVIDIA H100 80GB HBM3"] * 2
    assert machine_label(env) == "h · c · 8 cores · 2x NVIDIA H100 80GB HBM3"
    assert ("GPU driver", "550.54.15") in site_runs.env_facts(env)

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-1abc")  # a UUID prefix
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert [g.get("name") for g in machine_facts.gpu_facts()[0]] == ["NVIDIA H100 80GB HBM3"]


def test_mixed_gpus_named_only_where_the_mapping_is_certain() -> None:
    machine = [{"name": "NVIDIA A100", "uuid": "GPU-aa"}, {"name": "NVIDIA T4", "uuid": "GPU-bb"}]
    # CUDA orders fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID: "1" may not be NVML's 1
    assert machine_facts.name_visible_gpus(1, machine, "1") == [{"index": 0}]
    assert machine_facts.name_visible_gpus(1, machine, "1", "PCI_BUS_ID") == [{"index": 0, "name": "NVIDIA T4"}]
    assert machine_facts.name_visible_gpus(1, machine, "GPU-bb") == [{"index": 0, "name": "NVIDIA T4"}]
    assert machine_facts.name_visible_gpus(3, machine, None)[2] == {"index": 2}


@pytest.mark.parametrize("fake", [None, "no-driver"])
def test_no_nvml_or_no_gpu_gives_no_names_quietly(fake: str | None, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([], fail_init=True) if fake else None)  # None: ImportError
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert machine_facts.gpu_facts() == ([{"index": 0}], None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert machine_facts.gpu_facts() == ([], None)
    assert capsys.readouterr() == ("", "")


# --- fingerprints and optbench compare ------------------------------------------------------------

@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory, optbench_cache_dir: Path, optbench_runs_suites: None) -> Path:
    """A real one-cell run by the runner ``optbench run`` calls (baseline alone, batch size 1)."""
    root = tmp_path_factory.mktemp("machine")
    suite = root / "tiny-machine.yaml"
    suite.write_text(yaml.safe_dump(make_tiny_suite(name="tiny-machine"), sort_keys=False))
    return run_suite_file(suite, root / "results", optbench_cache_dir)


def variant(run: Path, dest: Path, change: Any) -> Path:
    """A copy of ``run`` whose env.json ``change(env)`` edited."""
    shutil.copytree(run, dest)
    env = json.loads((dest / "env.json").read_text())
    change(env)
    (dest / "env.json").write_text(json.dumps(env))
    return dest


def compare_cli(*args: Path | str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["compare", *map(str, args)])
    return code, out.getvalue(), err.getvalue()


def test_env_json_of_a_real_run_holds_this_machines_facts(real_run: Path) -> None:
    import torch

    env = json.loads((real_run / "env.json").read_text())
    cpu, build = env["cpu"], env["torch_build"]
    assert set(cpu) >= {"vendor_id", "family", "model", "stepping", "model_name", "flags"}
    assert build["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert build["blas"] and isinstance(build["intra_op_threads"], int)
    assert isinstance(env["gpus"], list) and all("index" in g for g in env["gpus"]) and "gpu_driver" in env
    assert env["cpu_model"] and env["cores"]  # what old readers read is still there
    if Path("/proc/cpuinfo").is_file():
        assert cpu == {**machine_facts.parse_cpuinfo(Path("/proc/cpuinfo").read_text()), "arch": cpu["arch"]}
        assert cpu["vendor_id"] and cpu["flags"] is not None
    fp = machine_fingerprint(env)
    assert fp["cpu_flags"] == sorted(cpu["flags"]) and fp["cpu_capability"] == build["cpu_capability"]
    label = machine_label(env)
    assert label.startswith(f"{env['hostname']} · ") and label.count(" · ") <= 4
    facts = dict(site_runs.env_facts(env))
    assert facts["torch CPU capability"] == build["cpu_capability"] and "CPU flags (kernel-selecting)" in facts


def test_a_different_cpu_family_is_a_different_machine(real_run: Path, tmp_path: Path) -> None:
    base = variant(real_run, tmp_path / "base", lambda e: e["cpu"].update(family=25, flags=["avx2"]))
    new = variant(real_run, tmp_path / "new", lambda e: e["cpu"].update(family=26, flags=["avx2"]))
    cmp = compare_runs(base, new)
    assert cmp.same_machine is False and cmp.machine_differences == ["cpu family 25 → 26"]
    assert site_runs.machine_fingerprint(json.loads((base / "env.json").read_text())) != \
        site_runs.machine_fingerprint(json.loads((new / "env.json").read_text()))

    code, out, err = compare_cli(base, new)
    assert code == 2 and out == "" and "Traceback" not in err
    assert "different machines (cpu family 25 → 26)" in err and "--allow-different-machines" in err


def test_a_missing_flag_is_named_not_dumped(real_run: Path, tmp_path: Path) -> None:
    flags = ["avx", "avx2", "avx512f", "avx512_bf16", "amx_tile", "fma"]
    base = variant(real_run, tmp_path / "base", lambda e: e["cpu"].update(flags=flags))
    new = variant(real_run, tmp_path / "new", lambda e: e["cpu"].update(flags=flags[:3] + ["fma", "avx512_vnni"]))
    assert compare_runs(base, new).machine_differences == [
        "cpu flags: base has amx_tile, avx512_bf16; new lacks them; new has avx512_vnni; base lacks it"]
    code, out, _ = compare_cli(base, new, "--allow-different-machines")
    assert code == 0 and "WARNING: DIFFERENT MACHINES" in out and "base has amx_tile, avx512_bf16" in out
    other_blas = variant(real_run, tmp_path / "openblas", lambda e: e["torch_build"].update(blas="open"))
    assert [d for d in compare_runs(real_run, other_blas).machine_differences if d.startswith("torch BLAS")]


def test_an_old_env_json_still_compares_with_a_new_one_on_the_same_host(real_run: Path, tmp_path: Path) -> None:
    def strip(env: dict[str, Any]) -> None:
        for key in ("cpu", "torch_build", "gpu_driver"):
            env.pop(key, None)
        env["gpus"] = [{"index": g["index"]} for g in env["gpus"]]

    old = variant(real_run, tmp_path / "old", strip)
    old_env = json.loads((old / "env.json").read_text())
    assert set(machine_fingerprint(old_env)) == {"hostname", "cpu_model", "cores", "gpus"}  # its id is kept
    for base, new, side in ((old, real_run, "base"), (real_run, old, "new")):
        cmp = compare_runs(base, new)
        assert cmp.same_machine is True and cmp.machine_differences == []
        header = "\n".join(header_lines(cmp))
        assert f"machine facts missing in the {side} run" in header and "flags" in header
    code, out, err = compare_cli(old, real_run)
    assert code == 0 and "(both runs)" in out, err
    # the old run named no GPU, the new one does: the same count is the same GPUs
    named = variant(real_run, tmp_path / "named", lambda e: e.update(gpus=[{"index": 0, "name": "NVIDIA L4"}]))
    counted = variant(old, tmp_path / "counted", lambda e: e.update(gpus=[{"index": 0}]))
    assert compare_runs(counted, named).same_machine is True
    # still a different host is a different machine
    moved = variant(old, tmp_path / "moved", lambda e: e.update(hostname="elsewhere"))
    assert compare_runs(moved, real_run).machine_differences[0].startswith("hostname elsewhere → ")


def test_labels_name_family_model_and_the_widest_kernels() -> None:
    env = {"hostname": "vm", "cpu_model": "AMD EPYC 9B45", "cores": 2, "gpus": [],
           "cpu": {**machine_facts.parse_cpuinfo(ZEN5), "model_name": "AMD EPYC 9B45"}}
    assert machine_label(env) == "vm · AMD EPYC 9B45 (family 26 model 2) · avx512_bf16 · 2 cores · no GPU"
    spr = {**env, "cpu_model": "Xeon", "cpu": machine_facts.parse_cpuinfo(SAPPHIRE_RAPIDS)}
    assert machine_label(spr) == "vm · Intel(R) Xeon(R) Platinum 8480+ (family 6 model 143) · amx_tile · 2 cores · no GPU"
    arm = {**env, "cpu_model": "aarch64", "cpu": machine_facts.parse_cpuinfo(NEOVERSE_V1)}
    assert machine_label(arm) == "vm · ARM Neoverse-V1 (part 0xd40) · sve · 2 cores · no GPU"
    assert machine_fingerprint(env) != machine_fingerprint({**env, "cpu": {**env["cpu"], "stepping": 0}})
