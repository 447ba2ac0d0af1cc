# Found only when the shared ggml is missing (see .cargo/config.toml).
message(FATAL_ERROR "\ntwin: the shared ggml build is missing (.ggml). Run: bash scripts/build-ggml.sh\n(scripts/run.sh and scripts/test.sh run it for you.)\n")
