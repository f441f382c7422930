# Per-target warnings (a subset of curl's PickyWarnings) and sanitizers.
function(cs_target_warnings tgt)
  target_compile_options(${tgt} PRIVATE -Wall -Wextra -Wshadow -Wformat=2
    -Wmissing-prototypes -Wstrict-prototypes -Wimplicit-fallthrough
    -Wno-unused-parameter -fno-omit-frame-pointer)
  if(CS_WERROR)
    target_compile_options(${tgt} PRIVATE -Werror)
  endif()
endfunction()

if(NOT CS_SANITIZER STREQUAL "none")
  add_compile_options(-fsanitize=${CS_SANITIZER} -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${CS_SANITIZER})
endif()
