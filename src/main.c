/* main.c - placeholder until the command line lands. */
#include <stdio.h>

#include "mtrain/core.h"

int main(void)
{
    printf("mtrain %s\n", MT_VERSION);
    return 0;
}
