//! timb's end-to-end tests live in `tests/`: timb accounts wrapped in OTR, through real
//! servers, over arti on the private Tor network. What they share with other tests is in
//! `tests/support` (timb-test-support).
