//! in.rexecd in a lab namespace, for the remote execution client's interop tests.
