// Package deco brings DECO's concurrent/synchronized model (Python's
// "Decorated Concurrency") to Go and spreads it over the ranks of a decorun
// job. A serial loop becomes parallel with two changes: the function is
// wrapped once with [Concurrent], and the loop runs inside [Synchronized].
//
//	var fib = deco.Concurrent(fibSerial) // package level: the same on every rank
//
//	func main() {
//		deco.Main(func(ctx context.Context) error { // runs on rank 0; the other ranks serve tasks
//			results := make([]int, len(ns))
//			err := deco.Synchronized(ctx, func(s *deco.Scope) {
//				for i, n := range ns {
//					fib.Assign(s, &results[i], n) // runs on some rank; written at the end of the block
//				}
//			})
//			fmt.Println(results) // every result is in place here, or err says which tasks failed
//			return err
//		})
//	}
//
// Go methods cannot have type parameters, so the typed calls hang off the
// wrapped function rather than the Scope: fib.Assign(s, &results[i], n)
// instead of DECO's results[i] = fib(n). The compiler checks the argument
// and result types.
//
// # API
//
// Wrapping (once, at package level, in the same order on every rank):
// [Concurrent], [Concurrent2], [Concurrent3] for func(A...) R;
// [ConcurrentErr], [ConcurrentErr2], [ConcurrentErr3] for
// func(A...) (R, error); [Action], [Action2], [Action3] for func(A...) with
// no result. Each returns a *Func, *Func2 or *Func3 whose methods issue calls
// inside a block:
//
//   - f.Assign(s, dst, args...): *dst = f(args...) at the end of the block
//     (dst may point into a slice element, a struct field, a nested
//     structure: &results[lat][lon]).
//   - f.Then(s, fn, args...): fn(f(args...)) at the end of the block, in
//     issue order (DECO's out.append(conc(x))); [Entry](m, k) makes the fn
//     that stores into map entry m[k].
//   - f.Go(s, args...): run for the side effects (the write-back below).
//   - f.Future(s, args...): a [*Future] whose Wait returns the result as
//     soon as that task is done, inside or after the block.
//   - f.Call(args...): a plain serial call on this goroutine.
//
// Every issuing method returns an error at the call when an argument cannot
// be encoded (and records it, so Synchronized returns it too).
//
// # Where tasks run
//
// Under decorun ([Main] or [Run] over a communicator of more than one rank)
// the block's body runs on rank 0 and the tasks on every rank, rank 0
// included: each rank runs up to NumCPU/LocalSize tasks at once (at least
// one; as many as its own CPUs when decorun bound it to a share of the
// host's), so `decorun -n 2` on two cores keeps both cores busy. Without
// decorun (a world of one rank, or Synchronized called with a context that
// did not come from Main or Run) the tasks run on a goroutine pool of
// GOMAXPROCS goroutines: DECO's "uses all the cores" with no launcher.
// Under decorun with more than one rank, a block whose context did not come
// from Main or Run is an error wrapping [ErrNoRun] that says what to add:
// without Main every rank would run the whole program and print its
// results once per rank.
// Either way a task's arguments and result are encoded, so both modes give
// the same results, errors and write-backs.
//
// # Scheduling
//
// Rank 0 keeps one queue of issued tasks in issue order. Workers pull: each
// worker rank may hold a few batches (its credit); a result batch coming
// back is what earns the next batch, so a rank busy with a long task is not
// handed more work while others are idle. Rank 0's own executors take from
// the same queue. Credit is one batch per task slot while the tasks are long
// or of unknown cost (so fib 38..33 finish in about the time of fib 38 plus
// a fair share of the rest) and three per slot once they are measured to be
// short, to hide the round trip.
//
// # Batching
//
// Rank 0 keeps a running estimate of each function's cost per task (from
// the run times the workers report). A batch holds as many tasks as fit in
// about 2 ms of estimated work (at most 1024 and 1 MiB of arguments, one
// while the cost is unknown, and no more than a fair share of what is
// queued); a worker that still has work in hand waits for a full batch, an
// idle one takes what there is. A batch is one message each way, so the
// per-message cost (a NATS round trip, tens of µs) is spread over the batch
// and the per-task cost is the encoding and bookkeeping, a few µs.
//
// # Back-pressure
//
// At most 65,536 tasks (and 64 MiB of encoded arguments) may be issued and
// not yet finished; an issuing call beyond that blocks until tasks finish
// (or ctx ends). A million calls never hold a million encoded tasks. A
// finished task keeps only its decoded result (and write-backs) until the
// end of the block, where it is applied; a very long stream of results
// should be split over several blocks.
//
// # End of block
//
// Synchronized returns when every task issued in it has finished. It then
// applies, on the goroutine that called it and in issue order, task by
// task: the task's assignment or Then callback, then its write-backs.
// Later tasks therefore win, as in serial code. Targets of assignments and
// arguments a task changes must not be read by the body before the block
// ends (DECO's rule): they hold their old values until then.
//
// # Write-back
//
// A task gets copies of its arguments (decoded on whichever rank runs it).
// When an argument's type can carry writes to the caller (it holds a
// pointer, map or slice), what the task changes through it is written back
// to the caller's value at the end of the block. What counts as a change:
// the argument after the call is compared with a second decoded copy of the
// argument as issued, element by element, following the memory the caller
// shares with the task: through pointers, into map entries (added, changed
// and deleted keys), slice and array elements and exported struct fields.
// A value that differs (reflect.DeepEqual) is a change and is written to the
// same place in the caller's value. Slices of numbers and bools are
// compared by their memory instead, an element whose bits changed being a
// change (so a NaN left alone is not written back), and each run of
// changed elements travels as one piece: the write-back of a task that set
// one element of a large slice costs a pass over its memory and that
// element. Header changes the caller could not see
// in serial Go are not written back (reassigning a parameter, appending to
// a slice argument); header changes it could see are (a slice or map stored
// behind a pointer, in a map or a slice that got a new length or became
// nil, is replaced whole). Interface values are compared and replaced whole.
// A task that fails has no write-backs. Fields tagged `cbor:"-"` do not
// travel and are never written back (other unexported fields are an error:
// see Encoding).
//
// # Encoding
//
// Arguments and results are encoded with CBOR (github.com/fxamacker/cbor/v2)
// at the call, in both modes. Types that can travel: booleans, numbers
// (not complex), strings, and pointers, slices, arrays, maps and structs of
// them whose fields are all exported (an embedded struct's exported fields
// count; a field tagged `cbor:"-"` is declared not to travel and stays
// zero), time.Time, *big.Int, and types with MarshalBinary/UnmarshalBinary
// or MarshalCBOR/UnmarshalCBOR methods. A function whose argument or
// result type cannot travel (an unexported field, as in package main's
// `type result struct{ sq, rank int }`, a channel, a function) still
// wraps, but every issuing call fails with an error wrapping [ErrType]
// (and [ErrEncode]) that names the type and the field, with or without
// decorun, so a program tested alone does not change on a cluster.
// Interface-typed values are checked at the call (arguments) or where the
// task ran (results): their dynamic type must travel too, and they arrive
// as their CBOR data (numbers, strings, []any, map[any]any), not their Go
// type. A value that cannot be encoded (a cycle) fails the call with an
// error wrapping [ErrEncode].
//
// # Registration
//
// A function is registered under its full name from runtime.FuncForPC, which
// includes the package path (github.com/x/a.work and github.com/x/b.work
// never collide), followed by "#k" for its k-th registration after the
// first. Every rank runs the same binary and the same package-level
// initialisation, so they agree without the user naming anything. A rank
// asked to run a name it does not know fails that task with
// [ErrNotRegistered].
//
// # Errors
//
// Every failed task is reported: Synchronized returns errors.Join of one
// [*TaskError] per failure (issue order), each naming the task's index in
// the block, the function and its arguments, the rank that ran it and the
// error or panic (with the panicking line); the message names the rank
// once. Successful tasks are still applied.
//
// A task's error takes the same trip in every mode (another rank, rank 0's
// own executors, the goroutine pool), so errors.Is and errors.As give the
// same answer wherever the task ran. Its chain (through %w, several %w and
// errors.Join) is described where it ran and rebuilt on rank 0 node by
// node: a node that was a registered sentinel comes back as that very
// value; any other node becomes a [*RemoteError] keeping the message, the
// Go type name, the rank and the nodes it wrapped (printed with %+v, it
// says which type came from which rank). errors.Is(err, target)
// holds for a node that matched target where it ran, when target is a
// registered sentinel ([RegisterError]; io.EOF, context.Canceled,
// context.DeadlineExceeded, the fs.Err* errors and deco's own are
// registered already, and a type's own Is method counts, so
// errors.Is(err, fs.ErrNotExist) finds a *fs.PathError's ENOENT), or when
// target has the node's Go type and message (an unregistered errors.New
// sentinel). errors.As(err, &target) holds when target's type is the
// node's Go type and that type can travel (see Encoding): the value is
// decoded into target, its error field (if it has one) set to the rebuilt
// cause. An error type with unexported fields cannot be rebuilt:
// errors.As finds only the *RemoteError.
//
// # Failure of a rank
//
// Started with `decorun --keep-going`, a worker rank that dies (SIGKILL, a
// crash) is reported by comm (c.Lost(), which deco consumes) or noticed as a
// failed send; every task it held that has not reported back is put at the
// head of the queue and runs again on the ranks that remain (rank 0
// included), so the block completes with correct results. A result that
// arrives twice (a late reply from a rank declared lost) is used once. A task
// that ran on the lost rank may therefore have run twice; its side effects
// outside deco's write-back must tolerate that. Rank 0's death ends the job.
// Without --keep-going decorun stops the whole job, as MPI does.
//
// # Progress
//
// A block that runs longer than half a second shows a progress bar (tasks
// done / issued, rate, ETA; github.com/schollz/progressbar/v3) on rank 0's
// stderr when it is a terminal, or when, under decorun, decorun's stderr
// is (DECORUN_TTY=1: rank 0's stderr is then a pipe to decorun, which
// forwards each frame as it is drawn). DECO_PROGRESS=0 or 1 in the
// environment, or the [Progress] option, turns it off or on.
//
// # Cost
//
// Per task: one CBOR encoding of the arguments at the call and one decoding
// where it runs, the same for the result, about 80 bytes kept until the end
// of the block (more for a failed task or one with write-backs), and for
// arguments that can carry writes a copy as issued (a memory copy for a
// slice of numbers, a second decoding otherwise) and a comparison after
// the call. Per batch: one
// message to the worker and one back. Concurrent pays off for tasks that
// cost more than a few µs locally and more than ~50 µs across ranks
// (DECO: ~1 ms).
package deco
