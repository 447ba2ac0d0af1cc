# Included into whisper.cpp's CMake project by whisper-rs-sys (see
# .cargo/config.toml): copy the shared ggml's static libraries into whisper's
# build folder, which whisper-rs-sys hands to rustc as a search path.
if(DEFINED ENV{ggml_ROOT} AND EXISTS "$ENV{ggml_ROOT}/lib/libggml.a")
  foreach(lib ggml ggml-base ggml-cpu)
    configure_file("$ENV{ggml_ROOT}/lib/lib${lib}.a" "${CMAKE_BINARY_DIR}/twin-ggml/lib${lib}.a" COPYONLY)
  endforeach()
endif()
