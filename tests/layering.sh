#!/bin/sh
# Include arrows point one way: core <- store, directory <- server <- cluster
# <- proxy <- proto
# <- the programs. A lower layer that includes a higher one makes the two
# depend on each other (the server once included every protocol's session
# header), so for each lower directory of src/ this lists which of the
# project's headers ("dir/name.h") it may include. proto/ and admin/ are the
# top layers, and ternd.c and ternctl.c wire the layers together: they are
# not checked.
#
#   tests/layering.sh SRC_DIR    (CTest: the "layering" test)
#
# Prints every include that points the wrong way as file:line and exits 1.
src=${1:?usage: layering.sh SRC_DIR}
src=${src%/}
status=0

check() {
	layer=$1
	allowed=$2
	set -- "$src/$layer"/*.c "$src/$layer"/*.h
	if [ ! -e "$1" ]; then
		echo "layering: no sources in $src/$layer" >&2
		status=1
		return
	fi
	bad=$(grep -snHE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"/]+/' "$@" |
		grep -vE ":[[:space:]]*#[[:space:]]*include[[:space:]]*\"($allowed)/")
	if [ -n "$bad" ]; then
		may=$(echo "$allowed" | sed 's,|,/ ,g')/
		echo "$bad" | while IFS= read -r hit; do
			echo "src/${hit#"$src"/}    <- $layer/ may include only $may" >&2
		done
		status=1
	fi
}

check core 'core'
check store 'core|store'
check directory 'core|directory'
check server 'core|store|directory|server'
check cluster 'core|store|directory|server|cluster'
check proxy 'core|directory|server|cluster|proxy'
check mover 'core|store|directory|server|cluster|mover'

if [ $status -ne 0 ]; then
	echo "layering: the includes above point the wrong way" >&2
else
	echo "layering: core, store, directory, server, cluster, proxy and mover include no higher layer"
fi
exit $status
