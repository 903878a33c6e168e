// Package cluster holds no code: its tests (package cluster_test, in this
// directory) build the decorun command and rank programs, start real jobs as
// a user would, and check output, exit codes, signals and that no process of
// a job outlives it.
package cluster
