"""Stage B building blocks: reconstruction losses and the DPLR Fisher state."""
from .fisher import FisherState
from .losses import (Normalized, beta_at, fisher_brecq_loss, fisher_diag_loss, fisher_dplr_loss,
                     fisher_lr_loss, mae_loss, mse_loss, rounding_regularizer)

__all__ = ['FisherState', 'Normalized', 'beta_at', 'fisher_brecq_loss', 'fisher_diag_loss',
           'fisher_dplr_loss', 'fisher_lr_loss', 'mae_loss', 'mse_loss', 'rounding_regularizer']
