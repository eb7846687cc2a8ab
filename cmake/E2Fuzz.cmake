# E2_FUZZ: the whole tree is compiled with libFuzzer's coverage hooks, ASan
# and UBSan (clang only); tests/fuzz links its targets with libFuzzer. Build
# just the targets: cmake --build build-fuzz --target e2_fuzz_all.
if(E2_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "e2: E2_FUZZ needs clang: -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++")
  endif()
  if(E2_SANITIZE)
    message(FATAL_ERROR "e2: E2_FUZZ already builds with ASan and UBSan: leave E2_SANITIZE off")
  endif()
  set(E2_CUDA OFF CACHE STRING "Build the CUDA backend: AUTO (when nvcc is found), ON, OFF" FORCE)
  add_compile_options($<$<COMPILE_LANGUAGE:C,CXX>:-fsanitize=fuzzer-no-link,address,undefined>
                      $<$<COMPILE_LANGUAGE:C,CXX>:-fno-sanitize-recover=undefined>
                      $<$<COMPILE_LANGUAGE:C,CXX>:-fno-omit-frame-pointer>
                      $<$<COMPILE_LANGUAGE:C,CXX>:-g>)
  add_link_options(-fsanitize=address,undefined)
endif()
