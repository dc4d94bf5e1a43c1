#!/usr/bin/env python3
"""Execute dynsim's notebooks headlessly on the "Rust (dynsim)" kernel.

    python3 kernel/execute.py notebooks/*.ipynb            # check: any failing cell fails
    python3 kernel/execute.py --inplace notebooks/*.ipynb  # and keep the outputs
    python3 kernel/execute.py --out DIR notebooks/*.ipynb  # write executed copies to DIR
    python3 kernel/execute.py --warm                       # start the kernel once (first build)
    python3 kernel/execute.py --smoke                      # a kernel building under $HOME runs a cell

Each notebook runs with its own folder as the working directory. Exit status 1 names the
notebook, the failing cell and the kernel's error. Timeouts are generous because the first
start of the kernel builds the toolkit (see kernel/install.sh).
"""

import argparse
import json
import os
import queue
import shutil
import sys
import tempfile
import time

try:
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError
except ImportError as e:  # pragma: no cover - depends on the machine
    sys.exit(f"kernel/execute.py: {e.name} is missing; run `bash kernel/install.sh --headless` first")

KERNEL = "rust-dynsim"
STARTUP_TIMEOUT = 2 * 3600  # the first start builds polars & co. inside evcxr
# Per cell: a cell that loads dependencies (`:dep`) may build the toolkit inside evcxr (minutes
# after kernel/install.sh, up to half an hour without it); any other cell that runs longer than
# CELL_TIMEOUT is taken as hung and fails the run.
DEP_CELL_TIMEOUT = 45 * 60
CELL_TIMEOUT = 10 * 60
# How long after a cell ends its late stderr (evcxr forwards it from a thread) is still its own.
LATE_STDERR_SECONDS = 0.5


def cell_timeout(cell):
    """The time a cell may take (nbclient's timeout_func)."""
    src = cell.get("source", "")
    return DEP_CELL_TIMEOUT if any(line.lstrip().startswith(":dep") for line in src.splitlines()) else CELL_TIMEOUT


class StrictClient(NotebookClient):
    """A notebook client for evcxr: a code cell that writes to stderr fails.

    evcxr answers "ok" to a cell whose code panicked (a failed `assert!`) or returned an
    error through `?`: it prints the panic or the error on the cell's stderr and goes on, so
    nbclient alone passes a notebook whose every assertion fails (a later cell may then fail
    on a variable the panicking cell never defined, far from the cause). Compile errors do
    come back as errors. dynsim's notebooks write nothing to stderr, so any stderr text is
    taken as a failure of that cell; a cell tagged `allow-stderr` is exempt."""

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        if cell.cell_type != "code" or "allow-stderr" in cell.get("metadata", {}).get("tags", []):
            return cell
        # evcxr forwards the cell process's stderr from a thread, so the report of an error
        # returned by `?` can reach iopub after the cell's idle status, when nbclient has stopped
        # listening (a smoke-test run missed it once). Whatever stderr arrives in the next moment
        # belongs to this cell: collect it before judging.
        deadline = time.monotonic() + LATE_STDERR_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await self.kc.iopub_channel.get_msg(timeout=left)
            except queue.Empty:
                break
            content = msg.get("content", {})
            if msg.get("msg_type") == "stream" and content.get("name") == "stderr":
                cell.outputs.append(nbformat.v4.new_output("stream", name="stderr", text=content.get("text", "")))
        text = "".join(
            o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stderr"
        ).strip()
        if text:
            lines = text.splitlines()
            what = "panicked (a failed assertion?)" if any(" panicked at " in l for l in lines) else (
                "wrote to stderr (evcxr's report of an error returned by `?`)"
            )
            shown = "\n".join(lines[:40] + ([f"... ({len(lines) - 40} more lines)"] if len(lines) > 40 else []))
            raise CellExecutionError(
                f"cell {cell_index} {what}:\n{cell.source}\n------------------\n{shown}", ename="CellFailed", evalue=what
            )
        return cell


def check_kernel():
    try:
        KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        sys.exit(f"kernel/execute.py: no Jupyter kernel '{KERNEL}'; run `bash kernel/install.sh --headless` first")


def failing_cell(nb):
    """The first code cell with an error output (or None)."""
    for cell in nb.cells:
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return cell
    return None


def run(nb, cwd, name, km=None, timeout_func=cell_timeout):
    client = StrictClient(
        nb,
        km=km,
        kernel_name=KERNEL,
        timeout_func=timeout_func,
        startup_timeout=STARTUP_TIMEOUT,
        resources={"metadata": {"path": cwd}},
    )
    start = time.time()
    try:
        client.execute()
    except CellExecutionError as e:
        print(f"FAILED {name}: a cell raised an error\n{e}", file=sys.stderr)
        # evcxr reports compile errors as error outputs of the cell (panics and `?` errors
        # only on its stderr, which StrictClient's message above already shows).
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    print("\n".join([out.get("ename", ""), out.get("evalue", "")] + out.get("traceback", [])), file=sys.stderr)
                elif out.get("name") == "stderr" and cell is failing_cell(nb):
                    print(out.get("text", ""), file=sys.stderr)
        return False
    except RuntimeError as e:  # the kernel died while starting (before kernel_info)
        print(f"FAILED {name}: the kernel did not start ({e}); its own message is above", file=sys.stderr)
        return False
    except DeadKernelError as e:
        print(f"FAILED {name}: the kernel died ({e}); is the toolkit building? see the kernel's log above", file=sys.stderr)
        return False
    except TimeoutError as e:
        print(f"FAILED {name}: timed out ({e})", file=sys.stderr)
        return False
    print(f"ok {name} in {time.time() - start:.1f} s", file=sys.stderr)
    return True


def smoke():
    """Start the installed kernel (its launcher and evcxr) with a new, empty build folder
    under $HOME and no dependencies, run one cell and check its value.

    Where evcxr's build folder lies decided whether a cell's shared library found Rust's
    standard library (a relative RUNPATH; under $HOME it did not, so every user's kernel died
    at its first cell while CI, building under /var/tmp, passed). This builds evcxr's own
    profile (RUNPATH and all) in the folder users get, so it fails if the launcher stops
    providing the library path."""
    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    home_cache = os.path.join(os.path.expanduser("~"), ".cache")
    os.makedirs(home_cache, exist_ok=True)
    work = tempfile.mkdtemp(prefix="dynsim-kernel-smoke-", dir=home_cache)
    try:
        build = os.path.join(work, "build")
        config = os.path.join(work, "config")
        kernels = os.path.join(work, "kernels")
        for d in (build, config, os.path.join(kernels, KERNEL)):
            os.makedirs(d)
        with open(os.path.join(kernels, KERNEL, "kernel.json"), "w") as f:
            json.dump({"argv": spec.argv, "display_name": "dynsim smoke test", "language": "rust",
                       "env": {"EVCXR_CONFIG_DIR": config, "EVCXR_TMPDIR": build}}, f)
        def new_km():
            # One per run: nbclient closes the manager's sockets when it finishes. An async
            # manager, as nbclient makes its own: with a blocking one nbclient waits for output
            # inside its event loop, so a cell that prints nothing is never timed out.
            return AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[kernels]))

        km = new_km()
        nb = nbformat.v4.new_notebook()
        nb.cells.append(nbformat.v4.new_code_cell("let v: Vec<u64> = (1..=10).collect();\nv.iter().sum::<u64>() * 2"))
        try:
            if not run(nb, work, f"smoke test (build folder {build})", km=km):
                return False
        finally:
            # A kernel manager passed in is not shut down by nbclient.
            shutdown(km)
        texts = [o.get("data", {}).get("text/plain", "") for o in nb.cells[0].get("outputs", [])]
        if not any(t.strip() == "110" for t in texts):
            print(f"FAILED smoke test: the cell should show 110, it showed {texts!r}", file=sys.stderr)
            return False
        libs = [os.path.join(dp, n) for dp, _, ns in os.walk(build) for n in ns if n.startswith("libcode_")]
        if not libs:
            print(f"FAILED smoke test: evcxr built no cell library under {build}", file=sys.stderr)
            return False
        return failing_cells_fail(new_km) and hung_cell_fails(new_km())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def failing_cells_fail(new_km):
    """A cell whose assertion fails, and one whose `?` returns an error, each fail the run
    (evcxr reports both only on stderr; see StrictClient)."""
    cases = [
        ("a failed assertion", "assert_eq!(1 + 1, 3, \"smoke: this assertion must fail the run\");"),
        ("an error returned by `?`", "let n: u32 = \"not a number\".parse()?;\nn"),
    ]
    for what, src in cases:
        nb = nbformat.v4.new_notebook()
        nb.cells.append(nbformat.v4.new_code_cell(src))
        nb.cells.append(nbformat.v4.new_code_cell("1 + 1"))
        work = tempfile.mkdtemp(prefix="dynsim-kernel-fail-")
        km = new_km()
        try:
            print(f"smoke test: {what} must fail the run (the FAILED line below is expected)", file=sys.stderr)
            if run(nb, work, what, km=km):
                print(f"FAILED smoke test: a notebook with {what} passed", file=sys.stderr)
                return False
            if nb.cells[1].get("outputs"):
                print(f"FAILED smoke test: the run went on after {what}", file=sys.stderr)
                return False
        finally:
            shutdown(km)
            shutil.rmtree(work, ignore_errors=True)
    return True


def hung_cell_fails(km, limit=20):
    """A cell that never returns fails the run after its timeout (here `limit` seconds),
    instead of holding the run for hours."""
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("loop { std::thread::sleep(std::time::Duration::from_secs(3600)); }"))
    work = tempfile.mkdtemp(prefix="dynsim-kernel-hang-")
    start = time.time()
    try:
        print("smoke test: a hung cell must time out (the FAILED line below is expected)", file=sys.stderr)
        finished = run(nb, work, "hung cell", km=km, timeout_func=lambda cell: limit)
        if finished or time.time() - start > limit + 120:
            print(f"FAILED smoke test: a hung cell {'returned' if finished else 'was not stopped in time'}", file=sys.stderr)
            return False
        return True
    finally:
        shutdown(km)
        shutil.rmtree(work, ignore_errors=True)


def shutdown(km):
    """Stop the kernel of a manager passed to nbclient (it only stops kernels it started)."""
    if km.has_kernel:
        run_sync(km.shutdown_kernel)(now=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*")
    ap.add_argument("--inplace", action="store_true", help="write the outputs back into each notebook")
    ap.add_argument("--out", help="write executed copies into this folder")
    ap.add_argument("--warm", action="store_true", help="start the kernel once and run one cell")
    ap.add_argument("--smoke", action="store_true", help="start the kernel with a new build folder under $HOME, run a cell")
    args = ap.parse_args()
    if not args.warm and not args.smoke and not args.notebooks:
        ap.error("name notebooks to execute, or --warm, or --smoke")
    check_kernel()
    ok = True
    if args.smoke:
        ok &= smoke()
    if args.warm:
        nb = nbformat.v4.new_notebook()
        nb.cells.append(nbformat.v4.new_code_cell("dynsim_kernel::FRAME_ROWS"))
        ok &= run(nb, os.getcwd(), "warm-up")
    for path in args.notebooks:
        if not os.path.isfile(path):
            print(f"FAILED {path}: no such notebook", file=sys.stderr)
            ok = False
            continue
        nb = nbformat.read(path, as_version=4)
        good = run(nb, os.path.dirname(os.path.abspath(path)), path)
        ok &= good
        if good and args.inplace:
            nbformat.write(nb, path + ".tmp")
            os.replace(path + ".tmp", path)
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            nbformat.write(nb, os.path.join(args.out, os.path.basename(path)))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
