"""The webserver configuration of a Runtime image ($AIRFLOW_HOME/webserver_config.py):
platform-issued identities through the Runtime security manager. A project that ships its own
webserver_config.py replaces this one."""

from flask_appbuilder.security.manager import AUTH_DB

from runtime_security.manager import RuntimeSecurityManager

WTF_CSRF_ENABLED = True
AUTH_TYPE = AUTH_DB  # the password form: see runtime_security.manager.password_login_enabled
AUTH_USER_REGISTRATION = False
AUTH_USERNAME_CI = False  # the platform's subjects are case-sensitive
SECURITY_MANAGER_CLASS = RuntimeSecurityManager
