# e2_forbid_links(<target> <folder>...): fails configure when <target> links,
# directly or through any library it links, a target defined under one of
# the folders (relative to the project root). Keeps the one-way layering
# that a build alone would not catch: e.g. e2d must not pull in worker/ or
# kernels/ code through a library that happens to link it.
function(e2_forbid_links target)
  set(seen "")
  set(todo ${target})
  while(todo)
    list(POP_FRONT todo t)
    if(t IN_LIST seen OR NOT TARGET ${t})
      continue()
    endif()
    list(APPEND seen ${t})
    get_target_property(imported ${t} IMPORTED)
    if(imported)
      continue()
    endif()
    get_target_property(dir ${t} SOURCE_DIR)
    file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${dir})
    foreach(f ${ARGN})
      if(rel STREQUAL f OR rel MATCHES "^${f}/")
        message(FATAL_ERROR "e2: ${target} links ${t} (${rel}), but nothing under "
                "${f}/ may be linked into ${target}: move the shared code to common/")
      endif()
    endforeach()
    foreach(prop LINK_LIBRARIES INTERFACE_LINK_LIBRARIES)
      get_target_property(libs ${t} ${prop})
      if(NOT libs)
        continue()
      endif()
      foreach(l ${libs})
        # $<LINK_ONLY:x> (a static library's private dependency) is still linked.
        string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" l "${l}")
        list(APPEND todo ${l})
      endforeach()
    endforeach()
  endwhile()
endfunction()
