package collectives

// Hooks for the tests of the Bcast fan-out.
var Fanouts = &fanouts
