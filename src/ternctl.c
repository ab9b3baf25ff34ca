/* ternctl: the Tern admin command line. Everything lives in src/admin/ so the
 * same operations can serve the admin API and be unit-tested. */
#include "admin/ctl-cli.h"

int main(int argc, char **argv)
{
	return ctl_main(argc, argv);
}
