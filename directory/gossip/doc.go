// Package gossip is membership gossip for veil nodes over
// hashicorp/memberlist: liveness, a small signed pointer in each node's
// metadata, and reliable fetch of the full descriptor it points to. Gossip
// carries liveness and descriptors only; clients never build paths from it
// (DESIGN.md G8).
//
// Pointers and descriptors are opaque bytes here, checked by callbacks
// (Config.VerifyPointer, Config.VerifyDescriptor), so the package does not
// depend on the directory's encodings.
//
// How it works (SPEC.md §1):
//   - A node's memberlist metadata is its pointer (≤ 512 bytes). Every
//     alive message is checked with VerifyPointer in memberlist's
//     AliveDelegate; a node whose pointer does not verify, or that rolls
//     its sequence back, is not admitted.
//   - When a member joins or its pointer changes, a fetch worker asks that
//     member for the descriptor its pointer names (a reliable memberlist
//     user message), verifies the answer with VerifyDescriptor and keeps
//     it. Failed fetches are retried with backoff a few times, then given
//     up until the pointer changes or the push/pull backstop re-arms them.
//   - A periodic push/pull (memberlist's full state exchange, on this
//     package's timer so that its period grows linearly with the cluster)
//     carries each node's list of (name, pointer) pairs as a backstop.
//   - A background loop joins the seeds, retrying with capped, jittered
//     backoff, and re-joins members and seeds that are not alive every
//     Timing.RejoinInterval (memberlist does not re-contact nodes that
//     left or were reaped; its issues #140, #222, #311).
//
// Nothing is done inside memberlist's callbacks beyond updating a table
// under a short lock and waking a goroutine: they run under memberlist's
// node lock, and NotifyJoin fires for the local node inside
// memberlist.Create.
//
// Goroutines and stop order: Start starts one join loop, one push/pull
// loop, one fetch scheduler, fetchWorkers fetch workers, one request
// server and replyWorkers reply workers, all owned by the Node. Close
// cancels them, shuts memberlist down (its transport first), waits for
// every goroutine, then closes the Events channel; a memberlist callback
// that still fires later (its suspicion timers are not stopped by
// Shutdown) finds the node closed and does nothing.
package gossip
