// Package conf holds veil's configuration: one struct per role (Seed, Relay,
// Client), each with a Default… constructor that gives the reason for every
// value, strict TOML loading, and the commented templates that
// `veil config init` prints.
//
// Loading is strict in the way katzenpost's is: an unknown key, a value of the
// wrong type or a bad value is an error, never a warning, and every error is a
// *Error naming the file, the line and, where one is known, the fix. A typo in
// an exit relay's config must stop the relay rather than quietly run it with
// a default it did not ask for.
//
// Parse… functions read bytes and touch nothing else, so they can be fuzzed;
// Load… functions read a file, parse it and create the data directory.
package conf
