"""Linux smoke test: Debian's cloud kernel (vmlinux extracted by
scripts/fetch-linux.sh) boots through ferry-vmm's PVH loader and prints its
banner on the serial console. On kvm_pvm it then stops on the known
emulation failure, which ferry-vmm must report in one clear line; on a
VMX/SVM host it goes on until it finds no root file system."""

import os
import sys

from ferrytest import *

VMLINUX = os.path.join(BUILD, "linux", "vmlinux")


def test_linux_banner():
    if not os.path.exists(VMLINUX):
        raise Failure(f"{VMLINUX} is missing: run scripts/fetch-linux.sh {BUILD}/linux")
    pvm = os.path.exists("/sys/module/kvm_pvm")
    vm = Vmm(kernel=VMLINUX, cmdline="earlyprintk=serial console=ttyS0 panic=-1",
             cpus=1, memory=512, control=False)
    try:
        i = vm.console.wait_for(r"Linux version 6\.1", 60)
        print(f"  {vm.console.lines[i][1][:100]}")
        if pvm:
            rc = vm.wait_exit(240)
            err = vm.stderr()
            print(f"  ferry-vmm: {err.strip()[:160]}...")
            check(rc == 1, f"exit status {rc}, expected 1 after the emulation failure")
            lines = [l for l in err.splitlines() if "error" in l]
            check(len(lines) == 1, f"expected one error line, got {lines}")
            check("emulation failure at guest rip 0x" in lines[0] and "kvm_pvm" in lines[0],
                  f"unclear report: {lines[0]!r}")
        else:
            vm.console.wait_for(r"Kernel panic|VFS: Unable to mount root", 240, i)
    finally:
        vm.kill()


if __name__ == "__main__":
    require_kvm()
    run_tests([test_linux_banner])
