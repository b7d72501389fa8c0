package main

import (
	"runtime/debug"

	"github.com/convoy-dl/convoy"
)

// version is convoy.Version as set at build time (make build stamps it with
// git describe), else the module version go install recorded, with the
// commit when the build knows it.
func version() string {
	v := convoy.Version
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v == convoy.DefaultVersion && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 && v == convoy.DefaultVersion {
			v += "+" + s.Value[:12]
		}
	}
	return v
}
