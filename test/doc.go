// Package test holds black-box integration tests: a real broker (in-process
// through package server, or the built mb binary as a child process) driven
// by the official Pulsar Go client and by raw protocol frames.
package test
