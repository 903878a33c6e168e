package collectives

// Hooks for the tests of the Bcast fan-out.
var Fanouts = &fanouts

// SplitCrowded makes a fused ReduceSlice fold by blocks on crowded hosts too.
var SplitCrowded = &splitCrowded
