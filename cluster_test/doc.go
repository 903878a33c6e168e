// Package cluster_test runs real decorun jobs: it builds the decorun command
// and rank programs, starts jobs as a user would, and checks output, exit
// codes, signals and that no process of a job outlives it.
package cluster_test
