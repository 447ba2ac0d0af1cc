# Found only when the shared ggml is missing (see .cargo/config.toml). Forget
# this stub so the next configure searches again, then stop with what to do.
set(ggml_DIR "ggml_DIR-NOTFOUND" CACHE PATH "ggml (scripts/build-ggml.sh)" FORCE)
message(FATAL_ERROR "\ntwin: the shared ggml build is missing (.ggml). Run: bash scripts/build-ggml.sh\n(scripts/run.sh and scripts/test.sh run it for you.)\n")
