//go:build !linux

package nginxtest

import "syscall"

// sysProcAttr: no parent-death signal outside Linux; Stop ends nginx.
func sysProcAttr() *syscall.SysProcAttr { return nil }
