package collectives

// HierCalls counts the calls run hierarchically across hosts.
var HierCalls = &hierCalls
