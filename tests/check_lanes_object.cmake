# Fails when the AVX2 or AVX-512 build of the Richards lane kernel (KERNEL=avx2 or avx512) defines a shared
# (weak, nm type W) function outside its own namespace: the linker keeps one copy of such an inline function
# for the whole program and may pick the AVX one for callers on machines without it
# (plugins/tem_wbm/richards_lanes.inc says what to avoid). Weak data (type V: typeinfo, vtables, as sanitizer
# builds emit) holds no instructions and is allowed.
#   cmake -DNM=<nm> -DKERNEL=avx2 -DOBJECTS=<objects joined by '|'> -P check_lanes_object.cmake
string(REPLACE "|" ";" objects "${OBJECTS}")
set(object "")
foreach(o IN LISTS objects)
  if(o MATCHES "richards_lanes_${KERNEL}\\.")
    set(object "${o}")
  endif()
endforeach()
if(NOT object)
  message(FATAL_ERROR "no richards_lanes_${KERNEL} object among: ${OBJECTS}")
endif()
execute_process(COMMAND "${NM}" -C --defined-only "${object}" OUTPUT_VARIABLE symbols RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "nm failed on ${object}")
endif()
string(REPLACE "\n" ";" lines "${symbols}")
set(shared "")
foreach(line IN LISTS lines)
  if(line MATCHES "^[0-9a-fA-F]* W " AND NOT line MATCHES "lanes_${KERNEL}::")
    string(APPEND shared "  ${line}\n")
  endif()
endforeach()
if(shared)
  message(FATAL_ERROR "${object} defines shared inline functions compiled for ${KERNEL}:\n${shared}")
endif()
message(STATUS "${object}: no shared symbols outside lanes_${KERNEL}::")
