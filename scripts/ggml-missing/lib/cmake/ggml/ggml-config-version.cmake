# Accept any requested version so that ggml-config.cmake runs and says what to do.
set(PACKAGE_VERSION "0")
set(PACKAGE_VERSION_COMPATIBLE TRUE)
