package comm

// For tests that need several ranks in one process: package
// github.com/decorun/decorun/comm/commtest,
//
//	cs := commtest.World(t, n)         // n connected ranks over a real embedded nats-server
//	commtest.Run(t, cs, func(c *comm.Comm) error { ... })
//
// (There is no comm.LocalWorld: it would link nats-server into every rank
// program. commtest.World is that function.)
