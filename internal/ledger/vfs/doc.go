// Package vfs is the small filesystem interface the ledger journal is written
// against, so that tests can run it in memory (NewMem) or inject disk faults and
// crashes (package faultfs). Default is the operating system's filesystem.
//
// It depends on the standard library only and must not import any other
// package of this module.
package vfs
