<?php
// Roundcube 1.6 (Debian 12: roundcube-core 1.6.5) logging in through the 2FA portal's OpenID Connect
// provider. IMAP (and SMTP) are opened with XOAUTH2 using the portal's access token; Dovecot checks the
// token at the portal (deploy/dovecot/).
//
// Install: replace the @…@ placeholders below, save as /etc/roundcube/config.inc.php (or point php-fpm's
// ROUNDCUBE_CONFIG_DIR at the directory holding it, see php-fpm-roundcube.conf); mode 0640, group www-data.
// The tests (tests/integration/roundcube.py) fill in the same placeholders and run this very file.
//
//   @PORTAL_URL@           the portal as browsers reach it = PORTAL_PUBLIC_URL, e.g. https://sso.example.edu.cn
//   @PORTAL_BACKCHANNEL@   the portal as this host reaches it (token, userinfo); normally the same URL
//   @CLIENT_ID@ @CLIENT_SECRET@   from `flask --app wsgi oidc client add roundcube
//                          --redirect-uri https://webmail.example.edu.cn/index.php/login/oauth`
//   @IMAP_HOST@ @SMTP_HOST@       e.g. tls://mail.example.edu.cn:143 and tls://mail.example.edu.cn:587
//   @WEBMAIL_HOST@         the host name of this Roundcube as browsers reach it, e.g. webmail.example.edu.cn
//                          (or a PCRE such as ^webmail\.example\.edu\.cn(:8443)?$ when a port is in the URL)
//   @DB_DSN@               e.g. sqlite:////var/lib/roundcube/db/roundcube.db?mode=0640
//   @DES_KEY@              24 random characters (session password encryption)
//   @LOG_DIR@ @TEMP_DIR@   writable by the php-fpm pool's user, e.g. /var/log/roundcube/ /var/lib/roundcube/temp/

$config = [];

$config['db_dsnw'] = '@DB_DSN@';
$config['des_key'] = '@DES_KEY@';
$config['log_driver'] = 'file';
$config['log_dir'] = '@LOG_DIR@';
$config['temp_dir'] = '@TEMP_DIR@';
$config['enable_installer'] = false;
// Roundcube builds its OAuth redirect URI from the Host header: accept only our own name.
$config['trusted_host_patterns'] = ['@WEBMAIL_HOST@'];
$config['product_name'] = 'Webmail';
$config['skin'] = 'elastic';
$config['plugins'] = [];
$config['language'] = 'zh_CN';

// The mail store. Roundcube authenticates with "AUTHENTICATE XOAUTH2" and the token as soon as a user
// logged in through OAuth; there is no password login to fall back to.
$config['imap_host'] = '@IMAP_HOST@';
$config['smtp_host'] = '@SMTP_HOST@';
// With OAuth Roundcube 1.6 forces SMTP to XOAUTH2 with these two (the submission server must offer
// Dovecot SASL with xoauth2 for Postfix: smtpd_sasl_type = dovecot).
$config['smtp_user'] = '%u';
$config['smtp_pass'] = '%p';

// --- single sign-on through the portal (issuer = PORTAL_PUBLIC_URL) ------------------------------------
$config['oauth_provider'] = 'generic';
$config['oauth_provider_name'] = '统一身份认证';
$config['oauth_client_id'] = '@CLIENT_ID@';
$config['oauth_client_secret'] = '@CLIENT_SECRET@';
// The browser is sent here (the portal asks for the password and the second step first).
$config['oauth_auth_uri'] = '@PORTAL_URL@/oauth/authorize';
// Called by Roundcube itself: client_secret_post, then the id_token's "email" claim is the IMAP user.
$config['oauth_token_uri'] = '@PORTAL_BACKCHANNEL@/oauth/token';
$config['oauth_identity_uri'] = '@PORTAL_BACKCHANNEL@/oauth/userinfo';
$config['oauth_identity_fields'] = ['email'];
$config['oauth_scope'] = 'openid profile email';
// Check the portal's TLS certificate on the token and userinfo calls. Never turn this off in production.
$config['oauth_verify_peer'] = true;
// Skip Roundcube's own login form: an unauthenticated visit goes straight to the portal.
$config['oauth_login_redirect'] = true;

// Roundcube opens IMAP on every request with the same access token, so its lifetime (≤ 1 h) bounds
// a session unless Roundcube refreshes it with the refresh token (it does, before it expires).
$config['session_lifetime'] = 30;
