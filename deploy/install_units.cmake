# Install-time part of deploy/CMakeLists.txt: writes e2d.service and
# e2worker@.service with this install's paths and installs them with the
# example configs. Under the /usr prefix (the .deb) configs go to /etc/e2,
# as the FHS wants; under any other prefix to <prefix>/etc/e2, so a trial
# install never touches the host's /etc. file(INSTALL) honours DESTDIR.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(E2_ETCDIR /etc/e2)
else()
  set(E2_ETCDIR ${CMAKE_INSTALL_PREFIX}/etc/e2)
endif()
set(E2_BINDIR ${CMAKE_INSTALL_PREFIX}/bin)
set(E2_DOCDIR ${CMAKE_INSTALL_PREFIX}/share/doc/e2)

# One folder per destination, so installs to different places at the same
# time (ctest -j, cpack) do not overwrite each other's units.
string(MD5 key "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}")
set(gen ${E2_DEPLOY_GEN}/${key})
foreach(unit e2d.service e2worker@.service)
  configure_file(${E2_DEPLOY_SRC}/systemd/${unit}.in ${gen}/${unit} @ONLY)
endforeach()
file(INSTALL ${gen}/e2d.service ${gen}/e2worker@.service
     DESTINATION ${CMAKE_INSTALL_PREFIX}/lib/systemd/system
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
# No secrets in them (tokens and keys live in files they name): 0644. A
# config already there is the admin's and stays as it is.
foreach(conf e2d.conf worker.conf)
  if(EXISTS "$ENV{DESTDIR}${E2_ETCDIR}/${conf}")
    message(STATUS "Keeping: $ENV{DESTDIR}${E2_ETCDIR}/${conf}")
  else()
    file(INSTALL ${E2_DEPLOY_SRC}/etc/${conf} DESTINATION ${E2_ETCDIR}
         FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endif()
endforeach()
