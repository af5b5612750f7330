# The browser UI (web/, docs/UI.md). Included from CMakeLists.txt; also run as a script
# (cmake -P cmake/web.cmake) by the qplay_web target to do the copying at build time.
#
# ${CMAKE_BINARY_DIR}/web gets web/ plus, in vendor/, the browser files of the npm packages
# (installed by `make deps` into node_modules/): `qplay serve` serves that folder, offline.

# npm file (relative to node_modules) | name under web/vendor/
set(QPLAY_WEB_VENDOR_FILES
  "preact/dist/preact.mjs|preact.mjs"
  "preact/hooks/dist/hooks.mjs|preact-hooks.mjs"
  "htm/dist/htm.mjs|htm.mjs"
  "@dagrejs/dagre/dist/dagre.esm.js|dagre.mjs"
  "plotly.js-dist-min/plotly.min.js|plotly.min.js")

if(CMAKE_SCRIPT_MODE_FILE)
  # Script mode: -DSOURCE_DIR=... -DOUTPUT_DIR=...
  set(modules "${SOURCE_DIR}/node_modules")
  set(missing "")
  foreach(entry IN LISTS QPLAY_WEB_VENDOR_FILES)
    string(REPLACE "|" ";" pair "${entry}")
    list(GET pair 0 from)
    if(NOT EXISTS "${modules}/${from}")
      list(APPEND missing "node_modules/${from}")
    endif()
  endforeach()
  if(missing)
    list(JOIN missing "\n  " missing_text)
    message(FATAL_ERROR "qplay web UI: missing npm files:\n  ${missing_text}\n"
      "run make deps (or: npm install --ignore-scripts --no-audit --no-fund) in ${SOURCE_DIR}")
  endif()
  file(MAKE_DIRECTORY "${OUTPUT_DIR}/vendor")
  file(COPY "${SOURCE_DIR}/web/" DESTINATION "${OUTPUT_DIR}" PATTERN "*.md" EXCLUDE PATTERN "package.json" EXCLUDE)
  foreach(entry IN LISTS QPLAY_WEB_VENDOR_FILES)
    string(REPLACE "|" ";" pair "${entry}")
    list(GET pair 0 from)
    list(GET pair 1 to)
    configure_file("${modules}/${from}" "${OUTPUT_DIR}/vendor/${to}" COPYONLY)
  endforeach()
  return()
endif()

# Always runs (cheap: file(COPY) skips unchanged files), so editing web/ and rebuilding is enough.
add_custom_target(qplay_web ALL
  COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${CMAKE_SOURCE_DIR} -DOUTPUT_DIR=${CMAKE_BINARY_DIR}/web
          -P ${CMAKE_SOURCE_DIR}/cmake/web.cmake
  COMMENT "Copying the web UI and its npm files to ${CMAKE_BINARY_DIR}/web"
  VERBATIM)

# Browser test: real `qplay serve` + headless Chromium (playwright-core). Fails (never skips)
# when Chromium or node_modules is missing: `make deps` installs both.
add_test(NAME web_playground COMMAND node ${CMAKE_SOURCE_DIR}/tests/web/playground.test.mjs)
set_tests_properties(web_playground PROPERTIES
  ENVIRONMENT "QPLAY_BINARY=$<TARGET_FILE:qplay>;QPLAY_WEB_DIR=${CMAKE_BINARY_DIR}/web;QPLAY_WEB_TEST_OUTPUT=${CMAKE_BINARY_DIR}/test-output/web"
  TIMEOUT 300
  RUN_SERIAL TRUE)

# Plain-data modules of the UI (routing, formatting, figure builders) under node, no browser.
add_test(NAME web_units COMMAND node --test ${CMAKE_SOURCE_DIR}/tests/web/units.test.mjs)
