# Read by cpack (CPACK_PROJECT_CONFIG_FILE). A .deb installs under /usr and
# /etc (its conffiles and units name those paths), so it is only built from a
# tree configured with -DCMAKE_INSTALL_PREFIX=/usr.
if(CPACK_GENERATOR STREQUAL "DEB" AND NOT CPACK_PACKAGING_INSTALL_PREFIX STREQUAL "/usr")
  message(FATAL_ERROR "the .deb needs a build configured with -DCMAKE_INSTALL_PREFIX=/usr "
                      "(this one has ${CPACK_PACKAGING_INSTALL_PREFIX})")
endif()
