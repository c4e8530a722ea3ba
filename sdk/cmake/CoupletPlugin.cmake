# couplet_add_plugin(<name> SOURCES <files...> [LIBRARIES <targets...>] [TORCH] [OUTPUT_DIR <dir>])
#
# Builds one plugin library, libcouplet_<name>.so, against the couplet SDK. TORCH links LibTorch and
# records its version in the plugin descriptor (the loader refuses plugins whose LibTorch differs).
# Plugins are built with hidden visibility: only the descriptor symbol is exported.
function(couplet_add_plugin name)
  cmake_parse_arguments(ARG "TORCH" "OUTPUT_DIR" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "couplet_add_plugin(${name}): SOURCES is required")
  endif()
  add_library(couplet_${name} MODULE ${ARG_SOURCES})
  target_link_libraries(couplet_${name} PRIVATE couplet::sdk ${ARG_LIBRARIES})
  set_target_properties(couplet_${name} PROPERTIES
    PREFIX "lib" CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN OFF)
  if(ARG_OUTPUT_DIR)
    set_target_properties(couplet_${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIR})
  elseif(DEFINED COUPLET_PLUGIN_OUTPUT_DIR)
    set_target_properties(couplet_${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${COUPLET_PLUGIN_OUTPUT_DIR})
  endif()
  # Installed plugins live where the installed couplet looks by default: <prefix>/lib/couplet/plugins.
  if(NOT ARG_OUTPUT_DIR)
    install(TARGETS couplet_${name} LIBRARY DESTINATION lib/couplet/plugins)
  endif()
  if(ARG_TORCH)
    if(NOT TARGET torch)
      find_package(Torch REQUIRED)
    endif()
    target_link_libraries(couplet_${name} PRIVATE torch)
    target_compile_definitions(couplet_${name} PRIVATE COUPLET_PLUGIN_TORCH_VERSION="${Torch_VERSION}")
  endif()
endfunction()
