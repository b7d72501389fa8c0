package nginxtest

import "syscall"

// sysProcAttr has the kernel kill nginx should the test process die
// before it stops nginx (a test binary killed at its timeout, say).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
