# CPack: `cpack -G DEB` in a build directory makes e2_<version>_<arch>.deb
# for Debian 12. Its postinst creates the e2 user and directories from the
# installed sysusers.d/tmpfiles.d entries and enables nothing: the admin
# picks the units for the machine's role (docs/deploy.md).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME e2)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "e2 maintainers <e2@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "E2-LLM context-window extension as a training service (e2d, e2worker, e2ctl)")
set(CPACK_PACKAGE_DESCRIPTION
    "e2d schedules E2-LLM fine-tuning jobs onto e2worker processes (one per\nGPU) over gRPC; e2ctl submits and follows them.")
# Install with DESTDIR and the real prefix /usr (whatever the build's
# CMAKE_INSTALL_PREFIX), so the units name /usr/bin/e2d and the configs land
# in /etc/e2 (deploy/install_units.cmake).
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
if(E2_HAVE_CUDA)
  string(APPEND CPACK_PACKAGE_DESCRIPTION
         "\nBuilt with CUDA: GPU nodes need the NVIDIA driver and the CUDA runtime,\ncuBLAS and NCCL of the toolkit it was built with.")
endif()
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libc6, libgcc-s1, libstdc++6, libgomp1, libopenblas0, libgrpc29, libprotobuf-c1, libuv1, libsqlite3-0, libjansson4, libgloo0, libsystemd0, libmicrohttpd12, libssl3, systemd")
set(_e2_pkg ${CMAKE_CURRENT_BINARY_DIR}/cpack-control)
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/deploy/debian/postinst
               ${_e2_pkg}/postinst COPYONLY FILE_PERMISSIONS OWNER_READ
               OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ
               WORLD_EXECUTE)
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/deploy/debian/conffiles
               ${_e2_pkg}/conffiles COPYONLY)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${_e2_pkg}/postinst ${_e2_pkg}/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
