# Dependency look-ups. A missing dependency fails configure with one line
# that names the Debian package to install (deploy/install-deps.sh installs
# them all).
find_package(PkgConfig QUIET)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "e2: pkg-config not found: apt-get install pkg-config")
endif()

# e2_require_pkg(<prefix> <pkg-config module> <debian package>)
# Defines the imported target PkgConfig::<prefix>.
function(e2_require_pkg prefix module debpkg)
  pkg_check_modules(${prefix} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT ${prefix}_FOUND)
    message(FATAL_ERROR "e2: ${module} not found: apt-get install ${debpkg}")
  endif()
endfunction()

# e2_require_program(<var> <program> <debian package>)
function(e2_require_program var prog debpkg)
  find_program(${var} ${prog})
  if(NOT ${var})
    message(FATAL_ERROR "e2: ${prog} not found: apt-get install ${debpkg}")
  endif()
endfunction()

e2_require_pkg(OPENBLAS openblas libopenblas-dev)
e2_require_pkg(PROTOBUFC libprotobuf-c libprotobuf-c-dev)
e2_require_pkg(GRPC grpc libgrpc-dev)
e2_require_pkg(GPR gpr libgrpc-dev)
e2_require_pkg(LIBUV libuv libuv1-dev)
e2_require_pkg(SQLITE sqlite3 libsqlite3-dev)
e2_require_pkg(JANSSON jansson libjansson-dev)
e2_require_pkg(SYSTEMD libsystemd libsystemd-dev)
e2_require_pkg(MHD libmicrohttpd libmicrohttpd-dev)
e2_require_pkg(CRYPTO libcrypto libssl-dev)
e2_require_program(E2_PROTOC_C protoc-c protobuf-c-compiler)

find_package(OpenMP QUIET COMPONENTS C)
if(NOT OpenMP_C_FOUND)
  message(FATAL_ERROR "e2: OpenMP for C not found: apt-get install build-essential")
endif()
find_package(Threads REQUIRED)

# Gloo (CPU collectives of worker/comm): Debian ships a CMake package.
find_package(Gloo CONFIG QUIET)
if(NOT Gloo_FOUND)
  message(FATAL_ERROR "e2: Gloo not found: apt-get install libgloo-dev")
endif()
