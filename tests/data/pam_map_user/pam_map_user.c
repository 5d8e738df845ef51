/*
 * A PAM module that maps login names, as winbind and SSSD do: a user who
 * types "alias-NAME" is authenticated as NAME (PAM_USER is rewritten). It
 * decides nothing itself (PAM_IGNORE); pam_unix after it checks NAME's
 * password. Built by tests/test_smaller_findings.py for one test.
 */
#include <string.h>
#include <security/pam_modules.h>

#define PREFIX "alias-"

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    const char *user = NULL;
    (void)flags;
    (void)argc;
    (void)argv;
    if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL)
        return PAM_IGNORE;
    if (strncmp(user, PREFIX, strlen(PREFIX)) == 0 && user[strlen(PREFIX)] != '\0') {
        char mapped[256];
        strncpy(mapped, user + strlen(PREFIX), sizeof(mapped) - 1);
        mapped[sizeof(mapped) - 1] = '\0';
        if (pam_set_item(pamh, PAM_USER, mapped) != PAM_SUCCESS)
            return PAM_SYSTEM_ERR;
    }
    return PAM_IGNORE;
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)pamh;
    (void)flags;
    (void)argc;
    (void)argv;
    return PAM_IGNORE;
}
