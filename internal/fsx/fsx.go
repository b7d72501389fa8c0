// Package fsx holds the few file-system steps that both the part file and the
// manifest need to be durable.
package fsx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// SyncDir fsyncs the folder dir so that a rename or a removal inside it
// survives a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// MkdirAll makes dir and the folders missing above it, as os.MkdirAll
// does, and fsyncs the folder holding each folder it makes: a folder's
// name is durable only once its parent is synced, and without it a crash
// could take the folder, and every file saved in it since, away.
func MkdirAll(dir string, perm fs.FileMode) error {
	var missing []string
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err == nil {
			if !st.IsDir() {
				return &fs.PathError{Op: "mkdir", Path: p, Err: syscall.ENOTDIR}
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		p := missing[i]
		if err := os.Mkdir(p, perm); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := SyncDir(filepath.Dir(p)); err != nil {
			return err
		}
	}
	return nil
}

// CloseOnError closes f when *err is non-nil, adding any close error to it.
func CloseOnError(f *os.File, err *error) {
	if *err != nil {
		*err = errors.Join(*err, f.Close())
	}
}

// Plain restates a failure to open or read a file given by the user in
// plain words, "PATH is a folder, not a file" rather than "read PATH: is a
// directory"; other errors are returned as they are.
func Plain(err error) error {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return err
	}
	switch {
	case errors.Is(err, syscall.EISDIR):
		return fmt.Errorf("%s is a folder, not a file", pe.Path)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s does not exist", pe.Path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s cannot be read: permission denied", pe.Path)
	}
	return err
}
