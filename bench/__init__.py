"""The benchmark harness behind `make bench`: a synthetic newsroom, real servers, wrk, and BENCHMARKS.md."""
