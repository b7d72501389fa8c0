// Package manifest keeps the durable progress of one download: the on-disk
// record of which bytes of the part file are done, replaced atomically at
// every checkpoint, and the lock that keeps a second process away.
//
// It knows nothing of HTTP: it stores what it is given and checks only that
// the record is whole and consistent.
package manifest
