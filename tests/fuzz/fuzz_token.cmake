# fuzz_token (issue 10): the token parser under clang's libFuzzer with ASan and
# UBSan. Included from tests/CMakeLists.txt when clang is installed; built with
# clang directly, whatever compiler builds the rest. ctest runs it over its seed
# corpus and then for a bounded number of generated inputs (label fuzz); run it
# longer by hand: build/test/tests/fuzz_token -max_total_time=600 CORPUS_DIR
set(FUZZ_TOKEN_SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_token.c
    ${PROJECT_SOURCE_DIR}/fcgi/token.c ${PROJECT_SOURCE_DIR}/fcgi/token_keys.c
    ${PROJECT_SOURCE_DIR}/fcgi/jose.c ${PROJECT_SOURCE_DIR}/fcgi/authz.c
    ${PROJECT_SOURCE_DIR}/fcgi/channel_name.c ${PROJECT_SOURCE_DIR}/fcgi/xalloc.c)
add_custom_command(
  OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/fuzz_token
  COMMAND ${PGFEED_CLANG} -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined
          -fno-sanitize-recover=undefined -I${PROJECT_SOURCE_DIR}/fcgi -I${CMAKE_CURRENT_SOURCE_DIR}/unit
          ${JSONC_CFLAGS} ${LIBCRYPTO_CFLAGS} ${FUZZ_TOKEN_SOURCES}
          ${JSONC_LDFLAGS} ${LIBCRYPTO_LDFLAGS} -o ${CMAKE_CURRENT_BINARY_DIR}/fuzz_token
  DEPENDS ${FUZZ_TOKEN_SOURCES} ${PROJECT_SOURCE_DIR}/fcgi/token.h ${PROJECT_SOURCE_DIR}/fcgi/token_keys.h ${PROJECT_SOURCE_DIR}/fcgi/jose.h ${CMAKE_CURRENT_SOURCE_DIR}/unit/jws_mint.h
          ${PROJECT_SOURCE_DIR}/fcgi/authz.h
  COMMENT "fuzz_token (clang libFuzzer)"
  VERBATIM)
add_custom_target(fuzz_token_build ALL DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_token)
# A scratch corpus in the build tree, so runs never write into the checkout.
add_test(NAME fuzz_token
         COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
                 ${CMAKE_CURRENT_BINARY_DIR}/fuzz_token -runs=200000 -max_total_time=30
                 -max_len=4096 ${CMAKE_CURRENT_BINARY_DIR}/fuzz_token_corpus
                 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus_token)
set_tests_properties(fuzz_token PROPERTIES LABELS fuzz TIMEOUT 120)
file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz_token_corpus)
