# e2_add_subdirs(<name>...): add_subdirectory for each listed folder that has
# a CMakeLists.txt, in the order given (libraries before their users).
function(e2_add_subdirs)
  foreach(d ${ARGN})
    if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${d}/CMakeLists.txt)
      add_subdirectory(${d})
    endif()
  endforeach()
endfunction()
