//! The account form: fills it from an account, validates it into one
//! (`accounts::validate`), and reports field errors to the window.

use timb_core::AccountId;

use crate::accounts::{self, FieldError, FormInput, PasswordMode};
use crate::controller::App;
use crate::slint_generatedMainWindow::{AccountForm, FormError};

impl App {
    // ---- accounts -------------------------------------------------------

    pub(crate) fn open_account_form(&mut self, id: Option<AccountId>) {
        self.editing = id;
        let form = match id.and_then(|id| self.model.entries.iter().find(|e| e.id == id)) {
            Some(e) => {
                let s = &e.account.settings;
                AccountForm {
                    editing: true,
                    irc: e.is_irc(),
                    server: s.server.clone().into(),
                    port: s.port.to_string().into(),
                    tls: match s.tls {
                        accounts::TlsMode::Pinned => 0,
                        accounts::TlsMode::Tofu => 1,
                        accounts::TlsMode::WebPki => 2,
                    },
                    pin: s.pin.clone().unwrap_or_default().into(),
                    identity: s.identity.clone().into(),
                    password_mode: (s.password_mode == PasswordMode::KeepForSession) as i32,
                    password: e.account.password.clone().unwrap_or_default().into(),
                    remember: e.account.remember,
                    create: false,
                }
            }
            None => AccountForm {
                tls: 2,
                ..Default::default()
            },
        };
        if let Some(w) = self.win() {
            w.set_account_form(form);
            w.set_form_error(FormError::None);
            w.set_account_dialog_open(true);
        }
    }

    /// Validates the form; on success adds or updates the account and closes.
    pub fn save_account(&mut self) -> Result<AccountId, FieldError> {
        let Some(w) = self.win() else {
            return Err(FieldError::ServerEmpty);
        };
        let f = w.get_account_form();
        let input = FormInput {
            irc: f.irc,
            server: f.server.to_string(),
            port: f.port.to_string(),
            tls: f.tls,
            pin: f.pin.to_string(),
            identity: f.identity.to_string(),
            password_mode: f.password_mode,
            password: f.password.to_string(),
            remember: f.remember,
            create: f.create && !f.editing,
        };
        let account = match accounts::validate(&input) {
            Ok(a) => a,
            Err(e) => {
                w.set_form_error(form_error(e));
                return Err(e);
            }
        };
        let id = match self.editing.take() {
            Some(id) => {
                if let Some(e) = self.entry(id) {
                    e.account = account;
                    // Another server, or another way to trust it.
                    e.server_key = None;
                }
                id
            }
            None => {
                let id = self.model.add_entry(account);
                w.set_selected_account(self.model.entries.len() as i32 - 1);
                id
            }
        };
        // Clear the password from the form's copy right away.
        w.set_account_form(AccountForm::default());
        w.set_form_error(FormError::None);
        w.set_account_dialog_open(false);
        self.save_remembered();
        self.refresh_accounts();
        Ok(id)
    }
}

fn form_error(e: FieldError) -> FormError {
    match e {
        FieldError::ServerEmpty => FormError::ServerEmpty,
        FieldError::ServerInvalid => FormError::ServerInvalid,
        FieldError::PortInvalid => FormError::PortInvalid,
        FieldError::IdentityEmpty => FormError::IdentityEmpty,
        FieldError::JidInvalid => FormError::JidInvalid,
        FieldError::NickInvalid => FormError::NickInvalid,
        FieldError::PinInvalid => FormError::PinInvalid,
        FieldError::PasswordEmpty => FormError::PasswordEmpty,
    }
}
